package main

import (
	"strings"
	"testing"

	"github.com/durachord/durachord/store/storetest"
)

// TestRecordedPositions: a data directory that records no positions stands
// at position 0 alone; one that records positions gives them back; a
// malformed record is refused with the key named; more recorded positions
// than ring.vnodes is refused in one line that says how to go on.
func TestRecordedPositions(t *testing.T) {
	db := storetest.OpenTemp(t)
	d := &daemon{db: db}
	got, err := d.recordedPositions()
	if err != nil || len(got) != 1 || got[0] != 0 {
		t.Fatalf("no record: %v, %v; want [0]", got, err)
	}
	for _, c := range []struct {
		value string
		ok    bool
	}{
		{`[0,17,200,3]`, true},
		{`[5,0]`, false},
		{`[]`, false},
		{`[0,256]`, false},
		{`not json`, false},
	} {
		if err := db.SetMeta(metaPositions, []byte(c.value)); err != nil {
			t.Fatal(err)
		}
		got, err := d.recordedPositions()
		if c.ok != (err == nil) {
			t.Errorf("recorded %s: %v, %v", c.value, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "ring positions") && !strings.Contains(err.Error(), "ring position") {
			t.Errorf("recorded %s: error %q does not say what is wrong", c.value, err)
		}
	}
	if err := checkPositions([]int{0, 1, 2, 3}, 4); err != nil {
		t.Errorf("four recorded, vnodes 4: %v", err)
	}
	if err := checkPositions([]int{0}, 4); err != nil {
		t.Errorf("one recorded, vnodes 4 (an upgrade): %v", err)
	}
	err = checkPositions([]int{0, 1, 2, 3}, 2)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "ring.vnodes is 2, but this data directory stands at 4 ring positions") {
		t.Errorf("four recorded, vnodes 2: %v; want a one-line refusal", err)
	}
}
