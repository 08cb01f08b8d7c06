package fft

// Butterfly kernels of one Stockham stage over runs of sv contiguous values
// (see stage). Complex products are written out in float32: Go's complex64
// multiplication widens to float64 and back, which costs more than the
// arithmetic itself.

// cmul returns a·w in float32 arithmetic.
func cmul(a, w complex64) complex64 {
	ar, ai, wr, wi := real(a), imag(a), real(w), imag(w)
	return complex(ar*wr-ai*wi, ar*wi+ai*wr)
}

func radix2(y, x []complex64, m, sv int, tw []complex64) {
	q := m * sv
	for g := 0; g < m; g++ {
		x0 := x[g*sv : g*sv+sv]
		x1 := x[q+g*sv : q+g*sv+sv]
		o := 2 * g * sv
		y0 := y[o : o+sv]
		y1 := y[o+sv : o+2*sv]
		if g == 0 {
			for i, a0 := range x0 {
				a1 := x1[i]
				y0[i] = a0 + a1
				y1[i] = a0 - a1
			}
			continue
		}
		w1 := tw[g]
		wr, wi := real(w1), imag(w1)
		for i, a0 := range x0 {
			a1 := x1[i]
			y0[i] = a0 + a1
			dr, di := real(a0)-real(a1), imag(a0)-imag(a1)
			y1[i] = complex(dr*wr-di*wi, dr*wi+di*wr)
		}
	}
}

func radix4(y, x []complex64, m, sv int, tw []complex64) {
	q := m * sv
	for g := 0; g < m; g++ {
		x0 := x[g*sv : g*sv+sv]
		x1 := x[q+g*sv : q+g*sv+sv]
		x2 := x[2*q+g*sv : 2*q+g*sv+sv]
		x3 := x[3*q+g*sv : 3*q+g*sv+sv]
		o := 4 * g * sv
		y0 := y[o : o+sv]
		y1 := y[o+sv : o+2*sv]
		y2 := y[o+2*sv : o+3*sv]
		y3 := y[o+3*sv : o+4*sv]
		if g == 0 {
			for i, a0 := range x0 {
				a1, a2, a3 := x1[i], x2[i], x3[i]
				t0r, t0i := real(a0)+real(a2), imag(a0)+imag(a2)
				t1r, t1i := real(a0)-real(a2), imag(a0)-imag(a2)
				t2r, t2i := real(a1)+real(a3), imag(a1)+imag(a3)
				t3r, t3i := real(a1)-real(a3), imag(a1)-imag(a3)
				y0[i] = complex(t0r+t2r, t0i+t2i)
				y1[i] = complex(t1r+t3i, t1i-t3r) // t1 - i·t3
				y2[i] = complex(t0r-t2r, t0i-t2i)
				y3[i] = complex(t1r-t3i, t1i+t3r) // t1 + i·t3
			}
			continue
		}
		w := tw[3*g : 3*g+3]
		w1r, w1i := real(w[0]), imag(w[0])
		w2r, w2i := real(w[1]), imag(w[1])
		w3r, w3i := real(w[2]), imag(w[2])
		for i, a0 := range x0 {
			a1, a2, a3 := x1[i], x2[i], x3[i]
			t0r, t0i := real(a0)+real(a2), imag(a0)+imag(a2)
			t1r, t1i := real(a0)-real(a2), imag(a0)-imag(a2)
			t2r, t2i := real(a1)+real(a3), imag(a1)+imag(a3)
			t3r, t3i := real(a1)-real(a3), imag(a1)-imag(a3)
			y0[i] = complex(t0r+t2r, t0i+t2i)
			br, bi := t1r+t3i, t1i-t3r
			y1[i] = complex(br*w1r-bi*w1i, br*w1i+bi*w1r)
			br, bi = t0r-t2r, t0i-t2i
			y2[i] = complex(br*w2r-bi*w2i, br*w2i+bi*w2r)
			br, bi = t1r-t3i, t1i+t3r
			y3[i] = complex(br*w3r-bi*w3i, br*w3i+bi*w3r)
		}
	}
}

const (
	sin60 = 0.86602540378443864676 // sin(2π/3)
	c51   = 0.30901699437494742410 // cos(2π/5)
	c52   = -0.80901699437494742410
	s51   = 0.95105651629515357212 // sin(2π/5)
	s52   = 0.58778525229247312917
)

func radix3(y, x []complex64, m, sv int, tw []complex64) {
	q := m * sv
	for g := 0; g < m; g++ {
		x0 := x[g*sv : g*sv+sv]
		x1 := x[q+g*sv : q+g*sv+sv]
		x2 := x[2*q+g*sv : 2*q+g*sv+sv]
		o := 3 * g * sv
		y0 := y[o : o+sv]
		y1 := y[o+sv : o+2*sv]
		y2 := y[o+2*sv : o+3*sv]
		w := tw[2*g : 2*g+2]
		w1r, w1i := real(w[0]), imag(w[0])
		w2r, w2i := real(w[1]), imag(w[1])
		for i, a0 := range x0 {
			a1, a2 := x1[i], x2[i]
			tr, ti := real(a1)+real(a2), imag(a1)+imag(a2)
			dr, di := sin60*(real(a1)-real(a2)), sin60*(imag(a1)-imag(a2))
			y0[i] = complex(real(a0)+tr, imag(a0)+ti)
			rr, ri := real(a0)-0.5*tr, imag(a0)-0.5*ti
			br, bi := rr+di, ri-dr // r - i·d
			y1[i] = complex(br*w1r-bi*w1i, br*w1i+bi*w1r)
			br, bi = rr-di, ri+dr
			y2[i] = complex(br*w2r-bi*w2i, br*w2i+bi*w2r)
		}
	}
}

func radix5(y, x []complex64, m, sv int, tw []complex64) {
	q := m * sv
	for g := 0; g < m; g++ {
		x0 := x[g*sv : g*sv+sv]
		x1 := x[q+g*sv : q+g*sv+sv]
		x2 := x[2*q+g*sv : 2*q+g*sv+sv]
		x3 := x[3*q+g*sv : 3*q+g*sv+sv]
		x4 := x[4*q+g*sv : 4*q+g*sv+sv]
		o := 5 * g * sv
		y0 := y[o : o+sv]
		y1 := y[o+sv : o+2*sv]
		y2 := y[o+2*sv : o+3*sv]
		y3 := y[o+3*sv : o+4*sv]
		y4 := y[o+4*sv : o+5*sv]
		w := tw[4*g : 4*g+4]
		for i, a0 := range x0 {
			a1, a2, a3, a4 := x1[i], x2[i], x3[i], x4[i]
			s1r, s1i := real(a1)+real(a4), imag(a1)+imag(a4)
			s2r, s2i := real(a2)+real(a3), imag(a2)+imag(a3)
			d1r, d1i := real(a1)-real(a4), imag(a1)-imag(a4)
			d2r, d2i := real(a2)-real(a3), imag(a2)-imag(a3)
			y0[i] = complex(real(a0)+s1r+s2r, imag(a0)+s1i+s2i)
			r1r, r1i := real(a0)+c51*s1r+c52*s2r, imag(a0)+c51*s1i+c52*s2i
			r2r, r2i := real(a0)+c52*s1r+c51*s2r, imag(a0)+c52*s1i+c51*s2i
			i1r, i1i := s51*d1r+s52*d2r, s51*d1i+s52*d2i
			i2r, i2i := s52*d1r-s51*d2r, s52*d1i-s51*d2i
			// b_k = R_k - i·I_k, b_{5-k} = R_k + i·I_k
			y1[i] = cmul(complex(r1r+i1i, r1i-i1r), w[0])
			y4[i] = cmul(complex(r1r-i1i, r1i+i1r), w[3])
			y2[i] = cmul(complex(r2r+i2i, r2i-i2r), w[1])
			y3[i] = cmul(complex(r2r-i2i, r2i+i2r), w[2])
		}
	}
}

// genChunk is how many values the generic kernel handles at a time; its
// temporaries take r*genChunk values.
const genChunk = 64

// radixGeneric is the butterfly of an odd radix r, pairing inputs j and r-j:
// b_k = a_0 + Σ_j [(a_j+a_{r-j}) cos θ_jk - i (a_j-a_{r-j}) sin θ_jk] and
// b_{r-k} the same with +i, so it costs about (r-1)²/4 complex-by-real
// products per butterfly instead of (r-1)².
func radixGeneric(y, x []complex64, st *stage, sv int, tmp []complex64) {
	r, m := st.r, st.m
	h := (r - 1) / 2
	q := m * sv
	for g := 0; g < m; g++ {
		tw := st.tw[g*(r-1) : (g+1)*(r-1)]
		for t0 := 0; t0 < sv; t0 += genChunk {
			L := min(genChunk, sv-t0)
			base := g*sv + t0
			// S_j at tmp[(j-1)*L], D_j at tmp[(h+j-1)*L]
			a0 := x[base : base+L]
			out0 := y[r*g*sv+t0 : r*g*sv+t0+L]
			copy(out0, a0)
			for j := 1; j <= h; j++ {
				aj := x[base+j*q : base+j*q+L]
				an := x[base+(r-j)*q : base+(r-j)*q+L]
				S := tmp[(j-1)*L : j*L]
				D := tmp[(h+j-1)*L : (h+j)*L]
				for i, u := range aj {
					v := an[i]
					S[i] = u + v
					D[i] = u - v
					out0[i] += u + v
				}
			}
			for k := 1; k <= h; k++ {
				yk := y[(r*g+k)*sv+t0 : (r*g+k)*sv+t0+L]
				yn := y[(r*g+r-k)*sv+t0 : (r*g+r-k)*sv+t0+L]
				wk, wn := tw[k-1], tw[r-k-1]
				for i := range yk {
					rr, ri := real(a0[i]), imag(a0[i])
					var ir, ii float32
					for j := 1; j <= h; j++ {
						c, s := st.cs[2*((k-1)*h+j-1)], st.cs[2*((k-1)*h+j-1)+1]
						S, D := tmp[(j-1)*L+i], tmp[(h+j-1)*L+i]
						rr += c * real(S)
						ri += c * imag(S)
						ir += s * real(D)
						ii += s * imag(D)
					}
					yk[i] = cmul(complex(rr+ii, ri-ir), wk)
					yn[i] = cmul(complex(rr-ii, ri+ir), wn)
				}
			}
		}
	}
}

// transposeIn sets dst[c*ds+i] = src[i*ss+c], conjugated if conj, for
// i < lanes and c < n: image rows become lanes.
func transposeIn(dst []complex64, ds int, src []complex64, ss, n, lanes int, conj bool) {
	if n <= 0 || lanes <= 0 {
		return
	}
	c0 := transposeAsm(dst, ds, src, ss, n, lanes, conj, false)
	l0 := 0
	if c0 > 0 {
		l0 = lanes &^ 3
	}
	for i := 0; i < lanes; i++ {
		c := c0
		if i >= l0 {
			c = 0
		}
		row := src[i*ss : i*ss+n]
		for ; c < n; c++ {
			v := row[c]
			if conj {
				v = complex(real(v), -imag(v))
			}
			dst[c*ds+i] = v
		}
	}
}

// transposeOut sets dst[i*ds+c] = src[c*ss+i] for i < lanes and c < n: lanes
// become image rows.
func transposeOut(dst []complex64, ds int, src []complex64, ss, n, lanes int) {
	if n <= 0 || lanes <= 0 {
		return
	}
	c0 := transposeAsm(dst, ds, src, ss, n, lanes, false, true)
	l0 := 0
	if c0 > 0 {
		l0 = lanes &^ 3
	}
	for i := 0; i < lanes; i++ {
		c := c0
		if i >= l0 {
			c = 0
		}
		row := dst[i*ds : i*ds+n]
		for ; c < n; c++ {
			row[c] = src[c*ss+i]
		}
	}
}

// scaleRows sets dst[r*ds+c] = scale·src[r*ss+c], conjugated if conj, for
// r < rows and c < n.
func scaleRows(dst []complex64, ds int, src []complex64, ss, rows, n int, scale float32, conj bool) {
	c0 := scaleRowsAsm(dst, ds, src, ss, rows, n, scale, conj)
	if c0 == n {
		return
	}
	for r := 0; r < rows; r++ {
		out := dst[r*ds+c0 : r*ds+n]
		in := src[r*ss+c0 : r*ss+n]
		if conj {
			for i, v := range in {
				out[i] = complex(real(v)*scale, -imag(v)*scale)
			}
		} else {
			for i, v := range in {
				out[i] = complex(real(v)*scale, imag(v)*scale)
			}
		}
	}
}
