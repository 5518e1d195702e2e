package eventstore

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// TestSubjectCache_BoundedByEvents: the cache holds at most its bound of
// events, forgetting the subjects used least recently first, and a
// subject bigger than the whole bound is not kept at all.
func TestSubjectCache_BoundedByEvents(t *testing.T) {
	sub := func(n int) Subject { return Subject{Events: make([]domain.Envelope, n), LastSeq: uint64(n)} }
	c := newSubjectCache(10)
	c.put("a", sub(4))
	c.put("b", sub(4))
	_, ok := c.get("a") // a is now the most recent
	require.True(t, ok)
	c.put("c", sub(3)) // 11 events: b goes
	_, ok = c.get("b")
	require.False(t, ok)
	got, ok := c.get("a")
	require.True(t, ok)
	require.Equal(t, uint64(4), got.LastSeq)
	c.put("a", sub(6)) // a grows in place: 9 events
	require.Equal(t, 9, c.events)
	c.put("huge", sub(11))
	_, ok = c.get("huge")
	require.False(t, ok)
	c.drop("a")
	_, ok = c.get("a")
	require.False(t, ok)
	require.Equal(t, 3, c.events)
	var none *subjectCache // a store that keeps none
	none.put("a", sub(1))
	_, ok = none.get("a")
	require.False(t, ok)
}
