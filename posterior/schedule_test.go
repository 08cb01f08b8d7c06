package posterior

import "testing"

func TestTimeGrid(t *testing.T) {
	g := make([]float64, 5)
	if err := TimeGrid(g); err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0.75, 0.5, 0.25, 0}
	for i := range g {
		if g[i] != want[i] {
			t.Errorf("grid %v, want %v", g, want)
			break
		}
	}
	if err := TimeGrid(make([]float64, 1)); err == nil {
		t.Error("one-point grid accepted")
	}
}
