// Package nn is kspaced's small neural-network engine: float32 NCHW tensors,
// a static graph of ops with forward and reverse-mode backward passes (giving
// parameter gradients for training and input vector–Jacobian products for
// MMPS), and a Backend interface that runs the arithmetic. The CPU backend
// (OpenBLAS GEMM plus Go kernels) is the reference an accelerator backend is
// tested against.
package nn

// Buffer is a view of float32 storage owned by a Backend: Host for the CPU
// backend, Dev (the device address of element 0) for an accelerator. Views are
// plain values, so slicing one never allocates.
type Buffer struct {
	Host []float32
	Dev  uintptr
	N    int
}

// Len is the number of float32 values in the view.
func (b Buffer) Len() int { return b.N }

// Slice returns the view of elements [i, j).
func (b Buffer) Slice(i, j int) Buffer {
	if i < 0 || j < i || j > b.N {
		panic("nn: buffer slice out of range")
	}
	v := Buffer{N: j - i}
	if b.Host != nil {
		v.Host = b.Host[i:j:j]
	}
	if b.Dev != 0 {
		v.Dev = b.Dev + uintptr(4*i)
	}
	return v
}

// ConvGeom describes a stride-1 K×K convolution of N images of Cin×H×W into
// Cout channels with zero padding Pad on every side; the output is
// (H+2·Pad−K+1)×(W+2·Pad−K+1).
type ConvGeom struct {
	N, Cin, H, W int
	Cout, K, Pad int
}

// OutH is the output height.
func (g ConvGeom) OutH() int { return g.H + 2*g.Pad - g.K + 1 }

// OutW is the output width.
func (g ConvGeom) OutW() int { return g.W + 2*g.Pad - g.K + 1 }

// Backend runs the engine's arithmetic on buffers it allocated. Methods named
// …Backward accumulate (+=) into their gradient outputs; a zero-length Buffer
// for a gradient output means "not needed". Shapes are trusted: the graph
// layer checks them once when it is built.
type Backend interface {
	Name() string
	// Alloc returns n zeroed values.
	Alloc(n int) Buffer
	Upload(dst Buffer, src []float32)
	Download(dst []float32, src Buffer)

	Fill(dst Buffer, v float32)
	Copy(dst, src Buffer)
	// Axpby sets dst = alpha·x + beta·dst.
	Axpby(dst Buffer, alpha float32, x Buffer, beta float32)
	// Dot returns Σ a·b accumulated in float64.
	Dot(a, b Buffer) float64

	// Gemm sets C = alpha·op(A)·op(B) + beta·C for row-major matrices, op(A)
	// m×k and op(B) k×n, as BLAS sgemm.
	Gemm(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int)

	// ConvWorkspace is the scratch size (values) ConvForward and ConvBackward need.
	ConvWorkspace(g ConvGeom) int
	// ConvForward sets y = w ⊛ x + bias (bias may be empty). w is
	// [Cout][Cin][K][K].
	ConvForward(y, x, w, bias, ws Buffer, g ConvGeom)
	// ConvBackward accumulates dx, dw and db from dy; any may be empty.
	ConvBackward(dx, dw, db, dy, x, w, ws Buffer, g ConvGeom)

	// GroupNorm normalises each of groups channel groups of each image of x
	// ([n][c][hw]) and applies the per-channel affine gamma, beta. It stores
	// the group mean and 1/std ([n][groups]) for the backward pass.
	GroupNorm(y, mean, rstd, x, gamma, beta Buffer, n, c, hw, groups int, eps float32)
	GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma Buffer, n, c, hw, groups int)

	// SiLU sets y = x·sigmoid(x).
	SiLU(y, x Buffer)
	SiLUBackward(dx, dy, x Buffer)

	// AddBroadcast adds b to y ([n][c][inner]): b is [c], or [n][c] when
	// perSample.
	AddBroadcast(y, b Buffer, n, c, inner int, perSample bool)
	// SumBroadcast is AddBroadcast's adjoint: db += Σ dy over the broadcast axes.
	SumBroadcast(db, dy Buffer, n, c, inner int, perSample bool)

	// Softmax normalises each of rows rows of x ([rows][cols]).
	Softmax(y, x Buffer, rows, cols int)
	// SoftmaxBackward takes the forward output y.
	SoftmaxBackward(dx, dy, y Buffer, rows, cols int)

	// AvgPool2 averages 2×2 blocks of planes images of h×w (h, w even).
	AvgPool2(y, x Buffer, planes, h, w int)
	AvgPool2Backward(dx, dy Buffer, planes, h, w int)
	// Upsample2 repeats each pixel of planes images of h×w into a 2×2 block.
	Upsample2(y, x Buffer, planes, h, w int)
	Upsample2Backward(dx, dy Buffer, planes, h, w int)

	// PixelUnshuffle moves r×r blocks of x ([n][c][h][w]) into channels:
	// y[n][c·r²+i·r+j][p][q] = x[n][c][p·r+i][q·r+j]. With inverse it is the
	// pixel shuffle, the reverse map from y's layout to x's. accumulate adds
	// instead of overwriting (for backward passes).
	PixelUnshuffle(y, x Buffer, n, c, h, w, r int, inverse, accumulate bool)

	// Embed writes sinusoidal embeddings y[i] = [cos(x_i f_k)…, sin(x_i f_k)…]
	// of the n scalars x, with dim/2 frequencies f_k = maxPeriod^(−k/(dim/2)).
	Embed(y, x Buffer, n, dim int, maxPeriod float32)
	EmbedBackward(dx, dy, x Buffer, n, dim int, maxPeriod float32)

	// Adam does one Adam step on p with gradient g and moments m, v;
	// bc1, bc2 are the bias corrections 1−β₁ᵗ, 1−β₂ᵗ.
	Adam(p, g, m, v Buffer, lr, beta1, beta2, eps, bc1, bc2 float32)
}
