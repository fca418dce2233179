package redisstore

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Event bodies are stored compressed with zstd at its fastest level when
// that saves at least an eighth of them: a stored event is mostly its body,
// and webhook bodies (JSON, forms) compress well, so Redis, whose memory
// bounds how much history it keeps, holds about twice as many events.
// Compressing a 1 KiB webhook costs about 10 µs of the gateway's CPU and
// none of Redis's. compress=s2 in the store URL trades some of the memory
// for CPU: S2 (klauspost/compress/s2) compresses the same webhook in about
// 2 µs, leaving 71 % of it where zstd leaves 53 %. Bodies below
// minCompress are kept as they are.
//
// compress=dict, the default of a store opened from a URL, compresses with
// S2 against a dictionary trained from the store's own bodies, and with
// zstd until it has one (dict.go).
//
// The letter after a body's length in an event's head says how it is
// stored: none as it came, z compressed with zstd, c with S2, d with S2
// and a dictionary; sealed (seal.go), s as it came, x after zstd, y after
// S2, w after S2 and a dictionary.

// codec is how a store compresses the bodies it writes; it reads every
// kind whatever its own.
type codec byte

const (
	codecZstd codec = iota // New's; Open's is codecDict
	codecS2
	codecNone
	codecDict
)

// packer is how a body is compressed: with codec, and, for codecDict,
// with dict (zstd while it is nil).
type packer struct {
	codec codec
	dict  *bodyDict
}

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

// compressBody returns the body to store and the letter of its
// compression: "z", "c", "d", or "" when it is stored as it came.
func compressBody(body []byte, p packer) ([]byte, string) {
	if len(body) < minCompress || p.codec == codecNone {
		return body, ""
	}
	var z []byte
	packed := "z"
	switch {
	case p.codec == codecS2:
		z, packed = s2.Encode(make([]byte, s2.MaxEncodedLen(len(body))), body), "c"
	case p.codec == codecDict && p.dict != nil:
		z, packed = p.dict.encode(body), "d"
		if len(z) > len(body)/8*dictFits {
			// Not a body like those the dictionary was trained on.
			if alt := bodyEncoder.EncodeAll(body, make([]byte, 0, len(z))); len(alt) < len(z) {
				z, packed = alt, "z"
			}
		}
	default:
		z = bodyEncoder.EncodeAll(body, make([]byte, 0, len(body)*3/4))
	}
	if len(z) > len(body)-len(body)/8 {
		return body, ""
	}
	return z, packed
}

// sealedFlag reports whether a body's flag says it is sealed.
func sealedFlag(flag string) bool { return flag == "s" || flag == "x" || flag == "y" || flag == "w" }

// sealedWith is the flag of a body compressed as packed says ("z", "c",
// "d" or ""), then sealed.
func sealedWith(packed string) string {
	switch packed {
	case "z":
		return "x"
	case "c":
		return "y"
	case "d":
		return "w"
	}
	return "s"
}

// packing is the compression letter ("z", "c", "d" or "") of a body's
// flag.
func packing(flag string) string {
	switch flag {
	case "z", "x":
		return "z"
	case "c", "y":
		return "c"
	case "d", "w":
		return "d"
	}
	return ""
}

// decompressBody reads a body compressBody compressed as packed says, with
// the dictionaries dicts finds.
func decompressBody(z []byte, packed string, dicts dictSource) ([]byte, error) {
	var b []byte
	var err error
	switch packed {
	case "d":
		b, err = decompressDict(z, dicts)
	case "z":
		b, err = bodyDecoder.DecodeAll(z, nil)
	case "c":
		if err = checkS2Len(z); err == nil {
			b, err = s2.Decode(nil, z)
		}
	default:
		return z, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return b, nil
}

// checkS2Len refuses an S2 block, with or without a dictionary, that says
// it decompresses to more than maxBody.
func checkS2Len(z []byte) error {
	n, err := s2.DecodedLen(z)
	if err == nil && n > maxBody {
		err = errors.New("s2: decoded length over the limit")
	}
	return err
}
