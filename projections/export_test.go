package projections

import "time"

// Checkpoint is the model's checkpoint encoding, snapshot and all, for the
// external tests; Resume is its decoding.
type Checkpoint struct {
	m *Model
	s *modelSnapshot
}

func SnapshotModel(m *Model) Checkpoint { return Checkpoint{m, m.snapshot()} }

func (c Checkpoint) Encode() ([]byte, error) {
	b, err := c.s.appendTo(nil)
	c.m.release()
	return b, err
}

func DecodeModel(tz *time.Location, b []byte) (*Model, error) { return decodeModel(tz, b) }

func WideCount(m *Model) int { return m.wide }
