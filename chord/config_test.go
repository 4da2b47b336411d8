package chord_test

import (
	"testing"

	"github.com/durachord/durachord/chord"
)

// TestFurtherPosition: a further position of a node at v positions runs
// its stabilise, predecessor-check and probe rounds every v intervals and
// refreshes a finger every 2v; at one position nothing changes.
func TestFurtherPosition(t *testing.T) {
	c := chord.DefaultConfig()
	if got := c.FurtherPosition(1); got.StabilizeInterval != c.StabilizeInterval || got.FixFingersInterval != c.FixFingersInterval ||
		got.CheckPredecessorInterval != c.CheckPredecessorInterval || got.ProbeInterval != c.ProbeInterval {
		t.Errorf("FurtherPosition(1) = %+v; want the config unchanged", got)
	}
	got := c.FurtherPosition(4)
	if got.StabilizeInterval != 4*c.StabilizeInterval || got.CheckPredecessorInterval != 4*c.CheckPredecessorInterval ||
		got.ProbeInterval != 4*c.ProbeInterval || got.FixFingersInterval != 8*c.FixFingersInterval {
		t.Errorf("FurtherPosition(4) = %+v; want rounds 4 times (fingers 8 times) as far apart as %+v", got, c)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("FurtherPosition(4) of the defaults does not validate: %v", err)
	}
}
