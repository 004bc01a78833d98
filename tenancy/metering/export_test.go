package metering

// WithShards returns c with n lock shards (a power of two), for the
// benchmarks comparing one mutex with many.
func WithShards(c Config, n int) Config {
	c.shards = n
	return c
}

// FreezeMinute makes Record read the minute as it does while Run runs,
// for benchmarks of Record without a catalog to flush to.
func (m *Meter) FreezeMinute() { m.minute.Store(unixMinute(m.now())) }
