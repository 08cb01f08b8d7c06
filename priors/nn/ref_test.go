package nn

import "math"

// Naive float64 reference forwards, written directly from each op's
// definition and independent of the engine's kernels; gradient checks
// differentiate them by central differences.

func refConv(x, w, b []float64, n, cin, h, wd, cout, k, pad int) []float64 {
	ho, wo := h+2*pad-k+1, wd+2*pad-k+1
	y := make([]float64, n*cout*ho*wo)
	for bi := 0; bi < n; bi++ {
		for co := 0; co < cout; co++ {
			for r := 0; r < ho; r++ {
				for c := 0; c < wo; c++ {
					var s float64
					if b != nil {
						s = b[co]
					}
					for ci := 0; ci < cin; ci++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								yy, xx := r+ky-pad, c+kx-pad
								if yy < 0 || yy >= h || xx < 0 || xx >= wd {
									continue
								}
								s += w[((co*cin+ci)*k+ky)*k+kx] * x[((bi*cin+ci)*h+yy)*wd+xx]
							}
						}
					}
					y[((bi*cout+co)*ho+r)*wo+c] = s
				}
			}
		}
	}
	return y
}

func refLinear(x, w, b []float64, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func refGroupNorm(x, gamma, beta []float64, n, c, hw, groups int) []float64 {
	y := make([]float64, len(x))
	cg := c / groups
	for b := 0; b < n; b++ {
		for g := 0; g < groups; g++ {
			lo, hi := (b*c+g*cg)*hw, (b*c+(g+1)*cg)*hw
			var m, v float64
			for _, t := range x[lo:hi] {
				m += t
			}
			m /= float64(hi - lo)
			for _, t := range x[lo:hi] {
				v += (t - m) * (t - m)
			}
			v /= float64(hi - lo)
			for i := lo; i < hi; i++ {
				ch := (i / hw) % c
				y[i] = (x[i]-m)/math.Sqrt(v+GroupNormEps)*gamma[ch] + beta[ch]
			}
		}
	}
	return y
}

func refSiLU(x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v / (1 + math.Exp(-v))
	}
	return y
}

func refEmbed(x []float64, dim int, maxPeriod float64) []float64 {
	half := dim / 2
	y := make([]float64, len(x)*dim)
	for i, v := range x {
		for k := 0; k < half; k++ {
			f := math.Pow(maxPeriod, -float64(k)/float64(half))
			y[i*dim+k] = math.Cos(v * f)
			y[i*dim+half+k] = math.Sin(v * f)
		}
	}
	return y
}

func refAvgPool(x []float64, planes, h, w int) []float64 {
	y := make([]float64, planes*h*w/4)
	for p := 0; p < planes; p++ {
		for r := 0; r < h/2; r++ {
			for c := 0; c < w/2; c++ {
				s := 0.0
				for dy := 0; dy < 2; dy++ {
					for dx := 0; dx < 2; dx++ {
						s += x[(p*h+2*r+dy)*w+2*c+dx]
					}
				}
				y[(p*h/2+r)*(w/2)+c] = s / 4
			}
		}
	}
	return y
}

func refUpsample(x []float64, planes, h, w int) []float64 {
	y := make([]float64, planes*h*w*4)
	for p := 0; p < planes; p++ {
		for r := 0; r < 2*h; r++ {
			for c := 0; c < 2*w; c++ {
				y[(p*2*h+r)*2*w+c] = x[(p*h+r/2)*w+c/2]
			}
		}
	}
	return y
}

// refUnshuffle follows PyTorch's pixel_unshuffle index map.
func refUnshuffle(x []float64, n, c, h, w, r int) []float64 {
	y := make([]float64, len(x))
	ho, wo := h/r, w/r
	for b := 0; b < n; b++ {
		for k := 0; k < c; k++ {
			for i := 0; i < r; i++ {
				for j := 0; j < r; j++ {
					for p := 0; p < ho; p++ {
						for q := 0; q < wo; q++ {
							oc := k*r*r + i*r + j
							y[((b*c*r*r+oc)*ho+p)*wo+q] = x[((b*c+k)*h+p*r+i)*w+q*r+j]
						}
					}
				}
			}
		}
	}
	return y
}

// refShuffle is the inverse map, x: [n][c·r²][h][w] → [n][c][h·r][w·r].
func refShuffle(x []float64, n, c, h, w, r int) []float64 {
	y := make([]float64, len(x))
	for b := 0; b < n; b++ {
		for k := 0; k < c; k++ {
			for i := 0; i < r; i++ {
				for j := 0; j < r; j++ {
					for p := 0; p < h; p++ {
						for q := 0; q < w; q++ {
							y[((b*c+k)*h*r+p*r+i)*w*r+q*r+j] = x[((b*c*r*r+k*r*r+i*r+j)*h+p)*w+q]
						}
					}
				}
			}
		}
	}
	return y
}

func refAttention(qkv []float64, n, c, l, heads int) []float64 {
	d := c / heads
	out := make([]float64, n*c*l)
	for b := 0; b < n; b++ {
		for h := 0; h < heads; h++ {
			at := func(part, ch, pos int) float64 { return qkv[((b*3*c)+part*c+h*d+ch)*l+pos] }
			for i := 0; i < l; i++ {
				s := make([]float64, l)
				m := math.Inf(-1)
				for j := 0; j < l; j++ {
					for ch := 0; ch < d; ch++ {
						s[j] += at(0, ch, i) * at(1, ch, j)
					}
					s[j] /= math.Sqrt(float64(d))
					m = math.Max(m, s[j])
				}
				z := 0.0
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for ch := 0; ch < d; ch++ {
					o := 0.0
					for j := 0; j < l; j++ {
						o += at(2, ch, j) * s[j] / z
					}
					out[(b*c+h*d+ch)*l+i] = o
				}
			}
		}
	}
	return out
}

func refAdd(a, b []float64) []float64 {
	y := make([]float64, len(a))
	for i := range a {
		y[i] = a[i] + b[i]
	}
	return y
}

func refConcat(a, b []float64, n int) []float64 {
	la, lb := len(a)/n, len(b)/n
	var y []float64
	for i := 0; i < n; i++ {
		y = append(y, a[i*la:(i+1)*la]...)
		y = append(y, b[i*lb:(i+1)*lb]...)
	}
	return y
}

func refAddChannel(x, e []float64, nc, hw int) []float64 {
	y := make([]float64, len(x))
	for p := 0; p < nc; p++ {
		for i := 0; i < hw; i++ {
			y[p*hw+i] = x[p*hw+i] + e[p]
		}
	}
	return y
}
