package priors

import (
	"fmt"

	"github.com/kspaced/kspaced/priors/nn"
)

// Clone returns a network with u's architecture and current weights on the
// same backend.
func (u *UNet) Clone() (*UNet, error) { return u.To(u.be) }

// To returns a network with u's architecture and current weights on be
// (a GPU backend, say, for a network loaded on the CPU). The copy shares
// nothing with u. Backend faults surface at be's next synchronisation.
func (u *UNet) To(be nn.Backend) (*UNet, error) {
	c, err := NewUNetOn(be, u.cfg, 0)
	if err != nil {
		return nil, err
	}
	c.MaxBatch, c.MemoryBudget, c.VJPMemoryBudget = u.MaxBatch, u.MemoryBudget, u.VJPMemoryBudget
	if len(c.params) != len(u.params) {
		return nil, fmt.Errorf("unet: %d parameters, %d on the new backend", len(u.params), len(c.params))
	}
	for i, p := range u.params {
		if q := c.params[i]; q.Name != p.Name || q.Len() != p.Len() {
			return nil, fmt.Errorf("unet: parameter %d is %s, %s on the new backend", i, p.Name, q.Name)
		}
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		be.Upload(c.params[i].Value, v)
	}
	if u.cov != nil {
		if c.cov, err = u.cov.to(be); err != nil {
			return nil, err
		}
	}
	return c, nil
}
