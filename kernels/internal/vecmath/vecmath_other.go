//go:build !amd64 || purego

package vecmath

// available returns the pure-Go kernels: there is no assembly for this
// platform or build.
func available() []Impl { return []Impl{goImpl} }
