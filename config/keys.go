package config

import (
	"reflect"
	"slices"
	"strings"
)

// Keys returns every key of Config as written in TOML, dotted for the keys of
// tables ("api.max_conns"), in declaration order.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(&Config{}).Elem(), "", func(key string, _ reflect.Value) {
		keys = append(keys, key)
	})
	return keys
}

// walk calls fn for every leaf field of the struct v (a table is walked, a
// Duration is a leaf), with its dotted TOML key.
func walk(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[Duration]() {
			walk(fv, key+".", fn)
			continue
		}
		fn(key, fv)
	}
}

// fields maps every key of c to its (settable) field.
func (c *Config) fields() map[string]reflect.Value {
	m := make(map[string]reflect.Value)
	walk(reflect.ValueOf(c).Elem(), "", func(key string, field reflect.Value) {
		m[key] = field
	})
	return m
}

// ReloadableKeys returns the keys a running node applies on SIGHUP: the TLS
// directory and the HMAC keyring file (both re-read, so certificates and keys
// rotate without a restart), the log level and the client API limits. Every
// other key needs a restart.
func ReloadableKeys() []string {
	return []string{
		"tls_dir",
		"hmac_keys",
		"log_level",
		"api.max_conns",
		"api.max_conns_per_address",
		"api.first_byte_timeout",
		"api.max_in_flight",
		"api.read_timeout",
		"api.idle_timeout",
		"api.request_timeout",
	}
}

// Changed returns the keys whose values differ between c and next, in the
// order of Keys.
func (c Config) Changed(next Config) []string {
	a, b := c.fields(), next.fields() // c and next are copies: fields needs addressable values
	var changed []string
	for _, key := range Keys() {
		if !reflect.DeepEqual(normalise(a[key]), normalise(b[key])) {
			changed = append(changed, key)
		}
	}
	return changed
}

// normalise makes a nil and an empty list compare equal.
func normalise(v reflect.Value) any {
	if v.Kind() == reflect.Slice && v.Len() == 0 {
		return nil
	}
	return v.Interface()
}

// Reload returns the configuration a running node with configuration c moves
// to when next is loaded on SIGHUP: c with the reloadable keys taken from
// next. restart lists the keys that differ in next but are not reloadable;
// they keep their running value until the node is restarted. next should
// have passed Validate.
func (c Config) Reload(next Config) (applied Config, restart []string) {
	applied = c.Clone()
	next = next.Clone()
	dst, src := applied.fields(), next.fields()
	reloadable := ReloadableKeys()
	for _, key := range c.Changed(next) {
		if !slices.Contains(reloadable, key) {
			restart = append(restart, key)
			continue
		}
		dst[key].Set(src[key])
	}
	return applied, restart
}
