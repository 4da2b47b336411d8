package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// iniSection is the INI section this package reads; every other section
// belongs to other modules of the course setup and is skipped.
const iniSection = "dht"

// decodeINI applies a course-style INI document to cfg. See the package doc
// for the format.
func decodeINI(data string, cfg *Config) error {
	fields := cfg.fields()
	section := "" // "" is the global section, before any header
	seenDHT := false
	seen := make(map[string]bool)
	for i, line := range strings.Split(data, "\n") {
		lineNo := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			name, rest, ok := strings.Cut(line[1:], "]")
			if rest = strings.TrimSpace(rest); rest != "" && rest[0] != ';' && rest[0] != '#' {
				ok = false
			}
			if !ok {
				return &KeyError{Line: lineNo, Key: line, Problem: "want a section header [NAME]", Err: ErrSyntax}
			}
			section = strings.ToLower(strings.TrimSpace(name))
			if section == iniSection {
				if seenDHT {
					return &KeyError{Line: lineNo, Key: "[" + iniSection + "]", Problem: "duplicate section", Err: ErrSyntax}
				}
				seenDHT = true
			}
			continue
		}
		if section != iniSection {
			// The global section (hostkey, ...) and other modules' sections:
			// not ours. hostkey is ignored on purpose: the node's identity
			// is its TLS certificate (tls_dir).
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return &KeyError{Line: lineNo, Key: line, Problem: "want KEY = VALUE", Err: ErrSyntax}
		}
		key := strings.ToLower(strings.TrimSpace(k))
		value := unquote(strings.TrimSpace(v))
		field, ok := fields[key]
		if !ok {
			return &KeyError{Line: lineNo, Key: key, Problem: "unknown key in [" + iniSection + "]", Err: ErrUnknownKey}
		}
		if seen[key] && field.Kind() != reflect.Slice {
			return &KeyError{Line: lineNo, Key: key, Problem: "set twice", Err: ErrSyntax}
		}
		if err := setFromString(field, key, value, !seen[key]); err != nil {
			if ke, ok := err.(*KeyError); ok {
				ke.Line = lineNo
			}
			return err
		}
		seen[key] = true
	}
	return nil
}

// unquote removes one pair of matching surrounding quotes.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// setFromString sets field from an INI value. A list is split at commas and
// white space; replace says whether it replaces the list (first occurrence of
// the key) or appends to it (a repeated key).
func setFromString(field reflect.Value, key, value string, replace bool) error {
	switch field.Interface().(type) {
	case Duration:
		var d Duration
		if err := d.UnmarshalText([]byte(value)); err != nil {
			return keyErr(key, ErrBadDuration, fmt.Sprintf("bad duration %q (want a number with a unit, like \"1h30m\" or \"500ms\")", value))
		}
		field.Set(reflect.ValueOf(d))
		return nil
	case []string:
		list := strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if !replace {
			list = append(field.Interface().([]string), list...)
		}
		field.Set(reflect.ValueOf(list))
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(value)
	case reflect.Int:
		n, err := strconv.Atoi(value)
		if err != nil {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want an integer, have %q", value))
		}
		field.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return keyErr(key, ErrInvalid, fmt.Sprintf("want true or false, have %q", value))
		}
		field.SetBool(b)
	default:
		return keyErr(key, ErrInvalid, fmt.Sprintf("unsupported field type %s", field.Type()))
	}
	return nil
}
