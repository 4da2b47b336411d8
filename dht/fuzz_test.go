package dht

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/durachord/durachord/chord"
)

// FuzzHandlers sends arbitrary parameters to every records call of a live
// node: nothing panics, and whatever a call accepts leaves the store
// consistent (the store's own cleanup checks it).
func FuzzHandlers(f *testing.F) {
	methods := []string{methodPut, methodGet, methodStore, methodRange, methodDigest, methodVersions, methodFetch, methodRecheck}
	seeds := []string{
		`{"key":"` + chord.ID{1}.String() + `","value":"aGVsbG8=","expiry":9999999999999999999,"replication":3}`,
		`{"records":[{"key":"` + chord.ID{2}.String() + `","value":"eA==","expiry":9000000000000000000,"version":{"Clock":5,"Node":1},"replication":2}]}`,
		`{"from":"` + chord.ID{}.String() + `","to":"` + chord.ID{}.String() + `","limit":3}`,
		`{"from":"` + chord.ID{9}.String() + `","to":"` + chord.ID{3}.String() + `","min_replication":2,"buckets":[0,255,-1]}`,
		`{"keys":["` + chord.ID{2}.String() + `"]}`,
		`null`, `[]`, `{"limit":-5}`, `{"key":"zz"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	// One node; its cleanups (registered on f) stop it and check its store.
	m := newRing(f, 1).members[0]
	f.Fuzz(func(t *testing.T, which uint8, params []byte) {
		if !json.Valid(params) {
			params, _ = json.Marshal(string(params))
		}
		method := methods[int(which)%len(methods)]
		_, _ = m.node.ServeRPC(context.Background(), chord.ID{7}, method, params)
	})
}
