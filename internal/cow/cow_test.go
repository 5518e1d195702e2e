package cow

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestVec_SnapshotIsolation(t *testing.T) {
	var v Vec[int]
	for i := range 1000 {
		v.Append(i)
	}
	w := v.Snapshot()
	for i := range v.Len() {
		*v.Mut(i) = -i
	}
	for i := range 300 {
		v.Append(1000 + i)
	}
	if w.Len() != 1000 || v.Len() != 1300 {
		t.Fatalf("lengths: view %d (want 1000), vec %d (want 1300)", w.Len(), v.Len())
	}
	for i := range w.Len() {
		if got := *w.At(i); got != i {
			t.Fatalf("view[%d] = %d after the vector changed, want %d", i, got, i)
		}
		if got := *v.At(i); got != -i {
			t.Fatalf("vec[%d] = %d, want %d", i, got, -i)
		}
	}
	v.Release()
	before := v.chunks[0]
	*v.Mut(0) = 7
	if v.chunks[0] != before {
		t.Fatal("a write after Release copied its chunk")
	}
	if *w.At(0) != 0 {
		t.Fatal("view changed")
	}
}

// TestVec_ConcurrentView: a View is read by one goroutine while the vector
// is written by another (run with -race).
func TestVec_ConcurrentView(t *testing.T) {
	var v Vec[[4]int]
	for i := range 3000 {
		v.Append([4]int{i, i, i, i})
	}
	w := v.Snapshot()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range w.Len() {
			if x := *w.At(i); x != [4]int{i, i, i, i} {
				t.Errorf("view[%d] = %v", i, x)
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		i := rng.IntN(v.Len())
		*v.Mut(i) = [4]int{-1, -1, -1, -1}
		v.Append([4]int{})
	}
	wg.Wait()
}

func TestIndex(t *testing.T) {
	keys := []string{}
	x := NewIndex(func(pos int32) string { return keys[pos] })
	for i := range 5000 {
		keys = append(keys, fmt.Sprintf("k%d", i))
		x.Put(keys[i], int32(i))
	}
	if x.Len() != 5000 {
		t.Fatalf("Len %d, want 5000", x.Len())
	}
	for i, k := range keys {
		if pos, ok := x.Get(k); !ok || pos != int32(i) {
			t.Fatalf("Get(%q) = %d, %v; want %d", k, pos, ok, i)
		}
	}
	if _, ok := x.Get("absent"); ok {
		t.Fatal("found a key never put")
	}
	// A second position for a key replaces the first.
	keys = append(keys, "k17")
	x.Put("k17", int32(len(keys)-1))
	if pos, _ := x.Get("k17"); pos != int32(len(keys)-1) || x.Len() != 5000 {
		t.Fatalf("after replacing k17: pos %d, len %d", pos, x.Len())
	}
	if pos, found := x.GetOrPut("k3", 99); !found || pos != 3 {
		t.Fatalf("GetOrPut(k3) = %d, %v; want the position it has, 3", pos, found)
	}
	keys = append(keys, "new")
	if pos, found := x.GetOrPut("new", int32(len(keys)-1)); found || pos != int32(len(keys)-1) {
		t.Fatalf("GetOrPut(new) = %d, %v; want it put", pos, found)
	}
	if pos, ok := x.Get("new"); !ok || pos != int32(len(keys)-1) {
		t.Fatalf("Get(new) after GetOrPut = %d, %v", pos, ok)
	}
	var empty Index[string]
	if _, ok := empty.Get("x"); ok {
		t.Fatal("the zero index found something")
	}
}
