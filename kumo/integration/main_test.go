package integration

import (
	"testing"

	"kumofs/internal/localcluster"
)

func TestMain(m *testing.M) { localcluster.Main(m) }
