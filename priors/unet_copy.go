package priors

// Clone returns a network with u's architecture and current weights on the
// same backend.
func (u *UNet) Clone() (*UNet, error) {
	c, err := NewUNetOn(u.be, u.cfg, 0)
	if err != nil {
		return nil, err
	}
	c.MaxBatch, c.MemoryBudget = u.MaxBatch, u.MemoryBudget
	for i, p := range u.params {
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		c.be.Upload(c.params[i].Value, v)
	}
	return c, nil
}
