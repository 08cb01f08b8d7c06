//go:build !amd64 || purego

package vexp

// Enabled is false: there is no kernel on this platform.
var Enabled = false

func affineAVX2(dst, src *float32, n int, a, b float32) { panic("vexp: no kernel on this platform") }

func affineSumAVX2(dst, src *float32, n int, a, b float32) float32 { panic("vexp: no kernel") }
func scaleAVX2(dst *float32, n int, c float32)                     { panic("vexp: no kernel") }
func maxAVX2(src *float32, n int) float32                          { panic("vexp: no kernel") }
