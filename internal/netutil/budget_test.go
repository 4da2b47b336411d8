package netutil

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestBudgetWaitsOverBudgetAndServesAnOversizedMessageAlone(t *testing.T) {
	ctx := context.Background()
	b, err := NewBudget(100)
	if err != nil {
		t.Fatal(err)
	}
	w1, err := b.Acquire(ctx, 60)
	if err != nil || w1 != 60 {
		t.Fatalf("Acquire(60) = %d, %v; want 60, nil", w1, err)
	}
	// 50 more do not fit: the acquire waits until w1 is released.
	got := make(chan int64, 1)
	go func() {
		w, _ := b.Acquire(ctx, 50)
		got <- w
	}()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := b.Acquire(short, 41); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire(41) with 60 of 100 held = %v; want it to wait until its ctx ends", err)
	}
	cancel()
	select {
	case w := <-got:
		t.Fatalf("Acquire(50) returned %d while 60 of 100 were held", w)
	default:
	}
	b.Release(w1)
	w2 := <-got
	if w2 != 50 || b.Held() != 50 {
		t.Fatalf("after release: Acquire(50) = %d, Held() = %d; want 50, 50", w2, b.Held())
	}
	b.Release(w2)
	// A message larger than the budget takes all of it rather than wait forever.
	big, err := b.Acquire(ctx, 1000)
	if err != nil || big != 100 {
		t.Fatalf("Acquire(1000) on a budget of 100 = %d, %v; want 100, nil", big, err)
	}
	b.Release(big)
	if b.Held() != 0 || b.Waits() < 2 {
		t.Errorf("Held() = %d, Waits() = %d; want 0, at least 2", b.Held(), b.Waits())
	}
}

func TestFirstByte(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	talker, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	s1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var ne net.Error
	if _, err := FirstByte(s1, 50*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("FirstByte(silent) = %v; want a timeout", err)
	}
	if _, err := talker.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c, err := FirstByte(s2, 5*time.Second)
	if err != nil {
		t.Fatalf("FirstByte(talker) = %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v after FirstByte; want \"hello\"", buf, err)
	}
}

func TestSourceBudgetsArePerAddress(t *testing.T) {
	ctx := context.Background()
	s, err := NewSourceBudgets(10)
	if err != nil {
		t.Fatal(err)
	}
	a1, closeA1 := s.Open(&net.TCPAddr{IP: net.ParseIP("127.0.0.66"), Port: 1})
	a2, closeA2 := s.Open(&net.TCPAddr{IP: net.ParseIP("127.0.0.66"), Port: 2})
	b, closeB := s.Open(&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1})
	if a1 != a2 || a1 == b {
		t.Fatal("two connections of one address got different budgets, or two addresses the same one")
	}
	w, _ := a1.Acquire(ctx, 10)
	if _, err := b.Acquire(ctx, 10); err != nil {
		t.Fatalf("another address's budget = %v with 127.0.0.66's spent; want its own 10 bytes", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := a2.Acquire(short, 1); err == nil {
		t.Fatal("a second connection of 127.0.0.66 acquired beyond the address's budget")
	}
	a1.Release(w)
	closeA1()
	closeA1() // idempotent
	if a3, closeA3 := s.Open(&net.TCPAddr{IP: net.ParseIP("127.0.0.66"), Port: 3}); a3 != a2 {
		t.Error("a new connection while another of the address is open got a new budget")
	} else {
		closeA3()
	}
	closeA2()
	closeB()
	if n := len(s.m); n != 0 {
		t.Errorf("%d budgets kept after every connection closed; want 0", n)
	}
	if s.Waits() < 1 {
		t.Errorf("Waits() = %d; want the wait of the closed budget counted", s.Waits())
	}
}
