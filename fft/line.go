package fft

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"
)

// A line is the plan of a 1-D forward DFT of length n applied to V
// independent "lanes" at once. Data is laid out point-major, lane-minor:
// value j of lane v is at j*V+v. Every butterfly then works on contiguous runs
// of lanes with one scalar twiddle, which keeps the inner loops simple and
// streaming for both the row pass (rows transposed into lanes) and the column
// pass (neighbouring columns are the lanes).
//
// The algorithm is a mixed-radix Stockham autosort FFT (no bit reversal, ping
// pong between two buffers); lengths with a prime factor above maxRadix use
// Bluestein's chirp-z algorithm around a smooth length.
type line struct {
	n      int
	stages []stage
	blue   *bluestein
	genMax int // largest generic radix among the stages (0 if none)
}

// stage q of a Stockham DIF transform. The current sub-transforms have length
// m*r and stride s (the product of the radices before this stage). Input point
// (g + j*m)*s + t goes into butterfly (g, t) as its j-th value; output k of
// that butterfly, times ω_{m r}^{g k}, is written to (r*g + k)*s + t.
type stage struct {
	r, m, s int
	tw      []complex64 // ω_{m r}^{g k}, at g*(r-1) + k-1, g < m, 1 ≤ k < r
	cs      []float32   // generic radix: cos, sin of 2π jk/r at 2((k-1)h + j-1), j,k ≤ h = (r-1)/2
}

// maxRadix is the largest prime factor handled by a generic odd-radix
// butterfly (cost ~ r real multiplies per point); above it Bluestein's
// algorithm (a few smooth FFTs of length ≥ 2n-1) is cheaper.
const maxRadix = 47

var lines sync.Map // int -> *line

// lineFor returns the cached plan for length n ≥ 1.
func lineFor(n int) *line {
	if l, ok := lines.Load(n); ok {
		return l.(*line)
	}
	l, _ := lines.LoadOrStore(n, newLine(n))
	return l.(*line)
}

func newLine(n int) *line {
	l := &line{n: n}
	rad, ok := factor(n)
	if !ok {
		l.blue = newBluestein(n)
		return l
	}
	s := 1
	for _, r := range rad {
		m := n / (s * r)
		st := stage{r: r, m: m, s: s, tw: make([]complex64, m*(r-1))}
		for g := 0; g < m; g++ {
			for k := 1; k < r; k++ {
				st.tw[g*(r-1)+k-1] = omega(g*k, m*r)
			}
		}
		if r > 5 {
			h := (r - 1) / 2
			st.cs = make([]float32, 2*h*h)
			for j := 1; j <= h; j++ {
				for k := 1; k <= h; k++ {
					a := 2 * math.Pi * float64(j*k%r) / float64(r)
					st.cs[2*((k-1)*h+j-1)] = float32(math.Cos(a))
					st.cs[2*((k-1)*h+j-1)+1] = float32(math.Sin(a))
				}
			}
			l.genMax = max(l.genMax, r)
		}
		l.stages = append(l.stages, st)
		s *= r
	}
	return l
}

// omega returns exp(-2πi k/n), computed in float64 with k reduced mod n.
func omega(k, n int) complex64 {
	a := -2 * math.Pi * float64(k%n) / float64(n)
	return complex(float32(math.Cos(a)), float32(math.Sin(a)))
}

// factor splits n into radices (4s first, then 2, 3, 5 and other primes up to
// maxRadix); ok is false when n has a larger prime factor.
func factor(n int) (rad []int, ok bool) {
	for n%4 == 0 {
		rad = append(rad, 4)
		n /= 4
	}
	if n%2 == 0 {
		rad = append(rad, 2)
		n /= 2
	}
	for p := 3; p <= maxRadix && n > 1; p += 2 {
		for n%p == 0 {
			rad = append(rad, p)
			n /= p
		}
	}
	return rad, n == 1
}

// smooth returns the least 2^a·3^b·5^c ≥ n.
func smooth(n int) int {
	best := math.MaxInt
	for p2 := 1; p2 < 2*n; p2 *= 2 {
		for p3 := p2; p3 < 2*n; p3 *= 3 {
			for p5 := p3; p5 < 2*n; p5 *= 5 {
				if p5 >= n && p5 < best {
					best = p5
				}
			}
		}
	}
	return best
}

// bluestein computes a length-n DFT as a circular convolution of length M:
// X_k = w_k Σ_j (x_j w_j) conj(w_{k-j}), w_j = exp(-πi j²/n).
type bluestein struct {
	n, M int
	sub  *line
	w    []complex64 // chirp w_j, j < n
	kf   []complex64 // FFT_M of the kernel conj(w), divided by M
}

func newBluestein(n int) *bluestein {
	M := smooth(2*n - 1)
	b := &bluestein{n: n, M: M, sub: lineFor(M), w: make([]complex64, n)}
	kern := make([]complex128, M)
	for j := 0; j < n; j++ {
		// j² mod 2n keeps the angle small so float64 keeps full precision.
		a := -math.Pi * float64((j*j)%(2*n)) / float64(n)
		w := complex(math.Cos(a), math.Sin(a))
		b.w[j] = complex64(w)
		kern[j] = complex(real(w), -imag(w))
		if j > 0 {
			kern[M-j] = kern[j]
		}
	}
	kf := fourier.NewCmplxFFT(M).Coefficients(nil, kern)
	b.kf = make([]complex64, M)
	for k, v := range kf {
		b.kf[k] = complex64(v / complex(float64(M), 0))
	}
	return b
}

// scratchLen is the number of values, per lane, of the two ping-pong buffers
// (index 0) and of Bluestein's two work buffers (index 1) this line needs.
func (l *line) scratchLen() (main, extra int) {
	if l.blue != nil {
		m, e := l.blue.sub.scratchLen()
		return l.n, max(l.blue.M, m, e) // sub transform runs in the extra buffers
	}
	return l.n, 0
}

// genLen is the temporary space the generic radix kernel needs.
func (l *line) genLen() int {
	g := l.genMax
	if l.blue != nil {
		g = l.blue.sub.genMax
	}
	return g * genChunk
}

// transform runs the forward DFT on the V lanes held in a[:n*V], using b[:n*V]
// as the second ping-pong buffer (and c, d of M*V values for Bluestein), and
// returns the buffer that holds the result (a or b).
func (l *line) transform(a, b, c, d []complex64, V int, tmp []complex64) []complex64 {
	if l.blue != nil {
		l.blue.transform(a, c, d, V, tmp)
		return a
	}
	n := l.n * V
	x, y := a[:n], b[:n]
	for i := range l.stages {
		st := &l.stages[i]
		sv := st.s * V
		if asmStage(y, x, st, sv, tmp) {
			x, y = y, x
			continue
		}
		switch st.r {
		case 2:
			radix2(y, x, st.m, sv, st.tw)
		case 3:
			radix3(y, x, st.m, sv, st.tw)
		case 4:
			radix4(y, x, st.m, sv, st.tw)
		case 5:
			radix5(y, x, st.m, sv, st.tw)
		default:
			radixGeneric(y, x, st, sv, tmp)
		}
		x, y = y, x
	}
	return x
}

// transform replaces the n×V values in a by their DFT, working in c and d.
func (b *bluestein) transform(a, c, d []complex64, V int, tmp []complex64) {
	n, M := b.n, b.M
	c = c[:M*V]
	for j, w := range b.w {
		src := a[j*V : j*V+V]
		dst := c[j*V : j*V+V]
		for i, v := range src {
			dst[i] = cmul(v, w)
		}
	}
	clear(c[n*V:])
	r := b.sub.transform(c, d, nil, nil, V, tmp)
	// conj(U·K): the next forward transform then computes the inverse.
	for k, kf := range b.kf {
		row := r[k*V : k*V+V]
		for i, v := range row {
			p := cmul(v, kf)
			row[i] = complex(real(p), -imag(p))
		}
	}
	other := c
	if &r[0] == &c[0] {
		other = d
	}
	q := b.sub.transform(r, other, nil, nil, V, tmp)
	for k, w := range b.w {
		src := q[k*V : k*V+V]
		dst := a[k*V : k*V+V]
		wc := complex(real(w), -imag(w))
		for i, v := range src {
			// conj(q)·w = conj(q·conj(w))
			p := cmul(v, wc)
			dst[i] = complex(real(p), -imag(p))
		}
	}
}
