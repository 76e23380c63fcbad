package feed

// SetAfterRead runs fn between each of the feed's reads and its handing on,
// where an Offer may come between.
func (f *Feed) SetAfterRead(fn func()) { f.afterRead = fn }
