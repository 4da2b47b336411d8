// Package chordtest provides an in-memory network on which many chord nodes run
// in one process, for tests and for the ring simulator (chordtest/sim).
//
// A Network connects endpoints by address. Each endpoint has an identity
// (chord.NodeInfo) and a chord.Handler. Network.Transport returns the
// chord.Transport through which an endpoint calls others; it implements the
// contract of chord.Transport and passes the transporttest conformance suite.
//
// Calls behave like the real transport as far as the caller can tell:
//
//   - Arguments and results are encoded as JSON and decoded on the other side,
//     so encoding bugs show up in tests.
//   - A handler error comes back as a *chord.RemoteError carrying
//     chord.ErrorCode(err), so errors.Is finds the same sentinel.
//   - A call to an address that is not registered, is down (Down), is in
//     another partition (Partition) or whose message is lost (Config.Loss)
//     fails with chord.ErrUnreachable at once, or after
//     Config.UnreachableDelay if that is set (bounded by the caller's ctx).
//     Failing at once keeps simulations fast; the delay models a timeout.
//   - Config.Latency (plus up to Config.Jitter) is spent before the call
//     reaches the handler; the handler runs with the caller's ctx, and the call
//     returns the ctx error if ctx ends first.
//
// Timers come from package time, so the network runs in virtual time inside a
// testing/synctest bubble.
package chordtest
