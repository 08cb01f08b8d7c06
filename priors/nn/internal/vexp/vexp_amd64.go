//go:build amd64 && !purego

package vexp

import "golang.org/x/sys/cpu"

// Enabled says Affine uses the AVX2+FMA kernel; tests switch it off to compare.
var Enabled = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func affineAVX2(dst, src *float32, n int, a, b float32)

//go:noescape
func affineSumAVX2(dst, src *float32, n int, a, b float32) float32

//go:noescape
func scaleAVX2(dst *float32, n int, c float32)

//go:noescape
func maxAVX2(src *float32, n int) float32
