// Package docs holds Herald's documentation pages. It has no code: its
// test checks that every relative link and #anchor in the pages and in the
// README leads somewhere, so that a page renamed or a heading reworded
// does not leave a reader at a dead end.
package docs
