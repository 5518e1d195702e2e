package eventstore

import (
	"container/list"
	"sync"
)

// subjectCache keeps the subjects this store wrote last, as they stood
// after its write: the next command on such a subject is decided without
// reading it back. That is safe because nothing a cached read could get
// wrong is ever acknowledged on it. A write names the cached last
// sequence as expected, so JetStream refuses it if anyone else wrote the
// subject since, and Update then reads the subject afresh; a refusal
// decided on cached state is decided again on a fresh read before it is
// given. What is cached is history, which never changes, so an entry can
// only be behind, never wrong.
//
// It is bounded by events, not subjects: a package's history is a dozen
// events, a plan's a handful, and the bound is what memory it may hold.
type subjectCache struct {
	mu        sync.Mutex
	maxEvents int
	events    int
	order     *list.List // front: most recently used; values are *cacheEntry
	entries   map[string]*list.Element
}

type cacheEntry struct {
	subject string
	sub     Subject
}

// defaultCacheEvents bounds the cache at a few tens of MB at most: a
// decoded event with its raw data is a few KB.
const defaultCacheEvents = 16384

func newSubjectCache(maxEvents int) *subjectCache {
	return &subjectCache{maxEvents: maxEvents, order: list.New(), entries: map[string]*list.Element{}}
}

// get returns the subject as this store last wrote it.
func (c *subjectCache) get(subject string) (Subject, bool) {
	if c == nil {
		return Subject{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[subject]
	if !ok {
		return Subject{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).sub, true
}

// put records the subject as it stands after a write this store made.
func (c *subjectCache) put(subject string, sub Subject) {
	if c == nil || len(sub.Events) > c.maxEvents {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[subject]; ok {
		e := el.Value.(*cacheEntry)
		c.events += len(sub.Events) - len(e.sub.Events)
		e.sub = sub
		c.order.MoveToFront(el)
	} else {
		c.entries[subject] = c.order.PushFront(&cacheEntry{subject: subject, sub: sub})
		c.events += len(sub.Events)
	}
	for c.events > c.maxEvents {
		c.removeLocked(c.order.Back())
	}
}

// drop forgets a subject whose state is no longer known: a conflict, or a
// write whose outcome is unknown.
func (c *subjectCache) drop(subject string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[subject]; ok {
		c.removeLocked(el)
	}
}

func (c *subjectCache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.entries, e.subject)
	c.events -= len(e.sub.Events)
}
