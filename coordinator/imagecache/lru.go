package imagecache

import "container/list"

// lru orders the cached entries by last use and keeps their total size.
// It is not safe for concurrent use; Cache guards it with its mutex.
type lru struct {
	ll    *list.List // of Entry; front is the most recently used
	items map[string]*list.Element
	bytes int64
}

func newLRU() *lru {
	return &lru{ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns the entry called name and marks it used.
func (l *lru) get(name string) (Entry, bool) {
	el, ok := l.items[name]
	if !ok {
		return Entry{}, false
	}
	l.ll.MoveToFront(el)
	return el.Value.(Entry), true
}

// add inserts e as the most recently used entry, replacing any entry of
// the same name.
func (l *lru) add(e Entry) {
	l.remove(e.Name)
	l.items[e.Name] = l.ll.PushFront(e)
	l.bytes += e.Size
}

func (l *lru) remove(name string) bool {
	el, ok := l.items[name]
	if !ok {
		return false
	}
	l.ll.Remove(el)
	delete(l.items, name)
	l.bytes -= el.Value.(Entry).Size
	return true
}

// oldest returns the least recently used entry.
func (l *lru) oldest() (Entry, bool) {
	el := l.ll.Back()
	if el == nil {
		return Entry{}, false
	}
	return el.Value.(Entry), true
}

func (l *lru) len() int { return l.ll.Len() }
