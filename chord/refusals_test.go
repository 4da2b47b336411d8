package chord

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestRefusalLogThrottles: refusals of one kind from one peer make one WARN
// line per interval, which counts the refusals it stands for; another peer
// or kind has lines of its own.
func TestRefusalLogThrottles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		log := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn})
		var l refusalLog
		a, b := ID{1}, ID{2}
		for range 50 {
			l.warn(log, refusedAnswer, a, "refused")
		}
		l.warn(log, refusedAnswer, b, "refused")
		l.warn(log, refusedOrder, a, "refused")
		if got := strings.Count(out.String(), "refused"); got != 3 {
			t.Fatalf("%d lines for 50 refusals of one peer and one each of two others; want 3:\n%s", got, out.String())
		}
		time.Sleep(refusalLogInterval)
		out.Reset()
		l.warn(log, refusedAnswer, a, "refused")
		if !strings.Contains(out.String(), "events-since-last-line=50") {
			t.Fatalf("line after the interval = %q; want it to count the 49 refusals not logged and this one", out.String())
		}
	})
}
