package dicomio

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/suyashkumar/dicom/pkg/uid"
)

var syntaxes = []string{
	uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian,
	uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian,
}

func TestCraftedImagesRead(t *testing.T) {
	for _, ts := range syntaxes {
		sd, err := decode(smallImage(ts), ReadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		in := sd.Series[0].Instances[0]
		if in.Rows != 4 || in.Cols != 3 || len(in.Pixels) != 12 {
			t.Fatalf("%s: %d×%d, %d pixels", ts, in.Rows, in.Cols, len(in.Pixels))
		}
		for i, v := range in.Pixels {
			if v != float32(i) {
				t.Fatalf("%s: pixel %d = %v", ts, i, v)
			}
		}
	}
}

// allocated runs f and returns the bytes it allocated (TotalAlloc delta).
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestHostileLengths feeds inputs whose headers claim huge lengths, counts
// or depths. Each must fail with the expected error and allocate at most a
// bounded multiple of its own size (the library alone would try to
// allocate what the headers claim: gigabytes).
func TestHostileLengths(t *testing.T) {
	le, imp, be := uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian
	deep := func(ts string, n int) []byte {
		e := newEnc(ts)
		for i := 0; i < n; i++ {
			e.hdr(0x0008, 0x1140, "SQ", undefinedLength).item(undefinedLength)
		}
		return part10(ts, e.b)
	}
	bomb := func() []byte {
		e := newEnc(le)
		e.imageHeader(4, 4, "", 8)
		e.el(0x0009, 0x0010, "OB", make([]byte, 16<<20))
		return part10(uid.DeflatedExplicitVRLittleEndian, e.b)
	}
	cases := []struct {
		name string
		in   []byte
		want error
		max  int64 // MaxFileSize (0: default)
	}{
		{"OB claims 4 GiB", part10(le, newEnc(le).hdr(0x0009, 0x1000, "OB", 0xFFFFFFF0).raw(1, 2, 3, 4).b), ErrTruncated, 0},
		{"implicit LO claims 2 GiB", part10(imp, newEnc(imp).hdr(0x0010, 0x0010, "", 0x7FFFFFFF).b), ErrTruncated, 0},
		{"implicit DA of undefined length", part10(imp, newEnc(imp).hdr(0x0008, 0x0020, "", undefinedLength).raw(make([]byte, 64)...).b), ErrMalformed, 0},
		{"DA with 16-bit length 0xFFFF", part10(le, newEnc(le).hdr(0x0008, 0x0020, "DA", 0xFFFF).raw(make([]byte, 64)...).b), ErrMalformed, 0},
		{"big-endian UT claims 4 GiB", part10(be, newEnc(be).hdr(0x0008, 0x0119, "UT", 0xFFFFFFF0).b), ErrTruncated, 0},
		{"item claims 4 GiB", part10(le, newEnc(le).hdr(0x0008, 0x1140, "SQ", undefinedLength).item(0xFFFFFFF0).b), ErrTruncated, 0},
		{"defined-length sequence holding a non-item", part10(le, newEnc(le).hdr(0x0008, 0x1140, "SQ", 8).raw(8, 0, 0x16, 0, 'U', 'I', 0, 0).b), ErrMalformed, 0},
		{"fragment claims 4 GiB", part10(le, newEnc(le).hdr(0x7FE0, 0x0010, "OB", undefinedLength).item(0).item(0xFFFFFFF0).b), ErrTruncated, 0},
		{"pixel data without offset table", part10(le, newEnc(le).hdr(0x7FE0, 0x0010, "OB", undefinedLength).seqEnd().b), ErrMalformed, 0},
		{"meta group claims 4 GiB", func() []byte {
			b := part10(le, nil)
			copy(b[140:144], []byte{0xF0, 0xFF, 0xFF, 0xFF})
			return b
		}(), ErrTruncated, 0},
		{"sequences nested 100000 deep", deep(le, 100000), ErrMalformed, 0},
		{"implicit sequences nested 100000 deep", deep(imp, 100000), ErrMalformed, 0},
		{"2^31 frames of 65535×65535", part10(le, newEnc(le).imageHeader(65535, 65535, "2147483647", 16).el(0x7FE0, 0x0010, "OW", make([]byte, 8)).b), ErrMalformed, 0},
		{"frames overflowing 32 bits to the pixel length", part10(le, newEnc(le).imageHeader(65535, 65535, "2147483648", 16).el(0x7FE0, 0x0010, "OW", make([]byte, 0)).b), ErrMalformed, 0},
		{"500000 frames of 1×1 without functional groups (valid)", part10(le, newEnc(le).imageHeader(1, 1, "500000", 8).el(0x7FE0, 0x0010, "OB", make([]byte, 500000)).b), nil, 0},
		{"100000 frames with 100000 empty per-frame groups (valid)", func() []byte {
			e := newEnc(le).imageHeader(1, 1, "100000", 8)
			e.hdr(0x5200, 0x9230, "SQ", undefinedLength)
			for i := 0; i < 100000; i++ {
				e.item(0)
			}
			return part10(le, e.seqEnd().el(0x7FE0, 0x0010, "OB", make([]byte, 100000)).b)
		}(), nil, 0},
		{"negative frames", part10(le, newEnc(le).imageHeader(4, 4, "-3", 16).el(0x7FE0, 0x0010, "OW", make([]byte, 32)).b), ErrUnsupportedPixels, 0},
		{"transfer syntax as UL", func() []byte {
			b := part10(le, nil)
			i := bytes.Index(b, []byte{2, 0, 0x10, 0, 'U', 'I'})
			copy(b[i+4:], "UL")
			return b
		}(), ErrMalformed, 0},
		{"unknown transfer syntax", part10("1.2.3.4.5", newEnc(le).str(0x0008, 0x0060, "CS", "MR").b), ErrUnsupportedTransferSyntax, 0},
		{"deflate bomb (16 MiB from a few KiB)", bomb(), ErrTooLarge, 1 << 20},
		{"file over the cap", smallImage(le), ErrTooLarge, 100},
	}
	for _, c := range cases {
		var err error
		got := allocated(func() { _, err = decode(c.in, ReadOptions{MaxFileSize: c.max}) })
		limit := uint64(64*len(c.in)) + 1<<20
		if c.name == "deflate bomb (16 MiB from a few KiB)" {
			limit = 4*uint64(c.max) + 1<<20 // bounded by the cap, not the input
		}
		switch {
		case !errors.Is(err, c.want):
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		case got > limit:
			t.Errorf("%s: allocated %d bytes for a %d-byte input (limit %d)", c.name, got, len(c.in), limit)
		default:
			t.Logf("%-48s %6d bytes in, %8d allocated: %v", c.name, len(c.in), got, err)
		}
	}
}

// TestManySmallElements bounds the library's per-element overhead: 120000
// empty elements (8 bytes each in implicit VR) around a valid image.
func TestManySmallElements(t *testing.T) {
	e := newEnc(uid.ImplicitVRLittleEndian)
	e.imageHeader(2, 2, "", 16)
	for g := uint16(0x0019); g <= 0x0023; g += 2 {
		for el := 0; el < 20000; el++ {
			e.hdr(g, uint16(0x1000+el), "", 0)
		}
	}
	e.el(0x7FE0, 0x0010, "OW", make([]byte, 8))
	in := part10(uid.ImplicitVRLittleEndian, e.b)
	var err error
	got := allocated(func() { _, err = decode(in, ReadOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	ratio := float64(got) / float64(len(in))
	t.Logf("%d bytes in, %d allocated: %.1f× the input", len(in), got, ratio)
	if ratio > 64 {
		t.Errorf("allocated %.1f× the input size, bound is 64×", ratio)
	}
}
