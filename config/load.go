package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load returns Default with the file at path applied over it. A path ending
// in ".ini" is read as a course-style INI file (see the package doc); any
// other as TOML. Decoding is strict: an unknown key, a value of the wrong type
// or a bad duration is an error that names the file and the key. Keys the file
// does not set keep their defaults. Load does not call Validate: the caller
// applies its flags first, then validates.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg := Default()
	if strings.EqualFold(filepath.Ext(path), ".ini") {
		err = decodeINI(string(data), &cfg)
	} else {
		err = decodeTOML(string(data), &cfg)
	}
	if err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			ke.File = path
			return Config{}, ke
		}
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// decodeTOML applies a TOML document to cfg.
func decodeTOML(data string, cfg *Config) error {
	var doc map[string]any
	if _, err := toml.Decode(data, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &KeyError{Line: pe.Position.Line, Key: pe.LastKey, Problem: "syntax error: " + pe.Message, Err: ErrSyntax}
		}
		return fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return applyTable(reflect.ValueOf(cfg).Elem(), "", doc)
}

// applyTable sets the fields of the struct v from the TOML table t, in key
// order so that the first error is the same on every run.
func applyTable(v reflect.Value, prefix string, t map[string]any) error {
	fields := make(map[string]reflect.Value)
	typ := v.Type()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			fields[name] = v.Field(i)
		}
	}
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := prefix + name
		field, ok := fields[name]
		if !ok {
			return keyErr(key, ErrUnknownKey, "unknown key")
		}
		if err := applyValue(field, key, t[name]); err != nil {
			return err
		}
	}
	return nil
}

// applyValue sets field from the decoded TOML value raw.
func applyValue(field reflect.Value, key string, raw any) error {
	switch field.Interface().(type) {
	case Duration:
		s, ok := raw.(string)
		if !ok {
			return keyErr(key, ErrBadDuration, fmt.Sprintf("want a duration string like \"1h30m\", have %s", describe(raw)))
		}
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			return keyErr(key, ErrBadDuration, fmt.Sprintf("bad duration %q (want a number with a unit, like \"1h30m\" or \"500ms\")", s))
		}
		field.Set(reflect.ValueOf(d))
		return nil
	case []string:
		list, ok := raw.([]any)
		if !ok {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want a list of strings, have %s", describe(raw)))
		}
		out := make([]string, 0, len(list))
		for i, item := range list {
			s, ok := item.(string)
			if !ok {
				return keyErr(fmt.Sprintf("%s[%d]", key, i), ErrInvalid, fmt.Sprintf("want a string, have %s", describe(item)))
			}
			out = append(out, s)
		}
		field.Set(reflect.ValueOf(out))
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want a string, have %s", describe(raw)))
		}
		field.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want true or false, have %s", describe(raw)))
		}
		field.SetBool(b)
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want an integer, have %s", describe(raw)))
		}
		if n < math.MinInt || n > math.MaxInt {
			return keyErr(key, ErrInvalid, fmt.Sprintf("%d is out of range", n))
		}
		field.SetInt(n)
	case reflect.Struct:
		t, ok := raw.(map[string]any)
		if !ok {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want a table [%s], have %s", key, describe(raw)))
		}
		return applyTable(field, key+".", t)
	default:
		// Only reached if a field of an unsupported type is added to Config;
		// TestKeysHaveSupportedTypes guards against that.
		return keyErr(key, ErrInvalid, fmt.Sprintf("unsupported field type %s", field.Type()))
	}
	return nil
}

// describe names the TOML type of a decoded value, with the value when short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}
