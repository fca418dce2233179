package redisstore

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Event bodies are stored compressed with zstd at its fastest level when
// that saves at least an eighth of them: a stored event is mostly its body,
// and webhook bodies (JSON, forms) compress well, so Redis, whose memory
// bounds how much history it keeps, holds about twice as many events.
// Compressing a 1 KiB body costs a few microseconds of the gateway's CPU
// and none of Redis's. Bodies below minCompress are kept as they are.

// minCompress is the smallest body worth compressing.
const minCompress = 256

// maxBody bounds what a stored body may decompress to, so that a damaged
// or forged value cannot make a reader allocate without limit. It is far
// above any body the gateway accepts.
const maxBody = 64 << 20

// The encoder and decoder are safe for concurrent use through EncodeAll and
// DecodeAll. Their options are constants: an error making them is a bug.
var (
	bodyEncoder = must(zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(false)))
	bodyDecoder = must(zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxBody), zstd.WithDecoderConcurrency(0)))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic("redisstore: zstd: " + err.Error())
	}
	return v
}

// compressBody returns the body to store and whether it is compressed.
func compressBody(body []byte) ([]byte, bool) {
	if len(body) < minCompress {
		return body, false
	}
	z := bodyEncoder.EncodeAll(body, make([]byte, 0, len(body)*3/4))
	if len(z) > len(body)-len(body)/8 {
		return body, false
	}
	return z, true
}

// decompressBody reads a body compressBody compressed.
func decompressBody(z []byte) ([]byte, error) {
	b, err := bodyDecoder.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return b, nil
}
