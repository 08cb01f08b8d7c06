package posterior

import "testing"

func TestComplexChannelsLayout(t *testing.T) {
	src := []complex64{1 + 2i, 3 + 4i, 5 + 6i, 7 + 8i, 9 + 10i, 11 + 12i}
	ch := make([]float32, 12)
	if err := ComplexToChannels(ch, src, 3); err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 3, 5, 2, 4, 6, 7, 9, 11, 8, 10, 12}
	for i := range want {
		if ch[i] != want[i] {
			t.Fatalf("channels %v, want %v", ch, want)
		}
	}
	back := make([]complex64, 6)
	if err := ChannelsToComplex(back, ch, 3); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if back[i] != src[i] {
			t.Fatalf("round trip %v, want %v", back, src)
		}
	}
	if err := ComplexToChannels(ch, src, 4); err == nil {
		t.Error("partial image accepted")
	}
	if err := ChannelsToComplex(back, ch[:10], 3); err == nil {
		t.Error("short channels accepted")
	}
	if err := ComplexToChannels(ch, src, 0); err == nil {
		t.Error("zero pixels accepted")
	}
}
