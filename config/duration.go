package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in files as a Go duration string:
// "1h30m", "500ms", "2s". A bare number is not accepted (it would hide its
// unit); "0s" is zero.
type Duration struct{ time.Duration }

// D returns d as a Duration.
func D(d time.Duration) Duration { return Duration{d} }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%w %q (want a number with a unit, like \"1h30m\" or \"500ms\")", ErrBadDuration, text)
	}
	d.Duration = v
	return nil
}
