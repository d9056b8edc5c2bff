// Package defaults fills the fields a configuration leaves unset, so each
// package's constructor states its defaults as one line a field.
package defaults

// Positive sets *v to def unless it is above zero: in a configuration, a
// zero (unset) or negative count, size or duration means the default.
func Positive[T ~int | ~int64 | ~float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Set sets *v to def when it is the zero value (a nil clock or logger).
func Set[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
