package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/s2"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store/seal"
)

// A store that compresses with a dictionary (compress=dict, the default of
// a store opened from a URL) trains one from its own bodies: webhooks of
// one sender repeat their field names, their constant values and their
// shape from one event to the next, and a body of 1 KiB compressed with S2
// against a dictionary of those keeps about a quarter of its size where
// zstd alone keeps a half, in about a fifth of zstd's time.
//
// Until the store has a dictionary, bodies are compressed with zstd, and
// the first dictSamples bodies worth compressing are kept (their first
// sampleMax bytes, dictSampleBytes in all). A goroutine then builds a dictionary from them
// (klauspost/compress/dict) and keeps it only if it compresses the samples
// smaller than zstd does. The first dictionary a process offers becomes
// the store's: the dicts hash holds it under its id (the hex of the first
// six bytes of its SHA-256) and names it under "current", in one script,
// so that every process of the store uses the same one, and a process
// that trained another takes the store's instead. A process opened on a
// store that has a dictionary uses it from the start and trains none. A
// dictionary that Redis did not take (an error, a timeout) leaves the
// store sampling again.
//
// Senders change: a store's bodies may come, a month on, mostly from a
// sender its dictionary was never trained on, and those are compressed
// with zstd. A process counts, over each window of fitWindow bodies it
// compresses, those its dictionary does not fit (compressBody kept
// something else); when more than a quarter of a window missed, it takes
// the store's dictionary if another process has replaced the one it uses,
// and otherwise, unless it trained less than retrainEvery ago, samples
// the bodies that come next and trains again. The new dictionary replaces
// the store's only when it keeps at most seven eighths of what the one in
// use keeps of the same samples, and only if the store's is still the one
// this process used: a process whose store moved on meanwhile takes the
// store's instead.
//
// A body compressed with a dictionary is flagged d (w when sealed after)
// and starts with the dictionary's id, so that it stays readable whatever
// dictionary the store uses later: readers load a dictionary they do not
// know from the dicts hash, by its id, once. Dictionaries are never
// deleted, and nothing but the store writes them.
//
// A dictionary holds strings common to the bodies it was trained on, in
// clear: a store that seals its events (WithKeys) compresses with zstd
// instead, and compress=zstd keeps every body to itself.

const (
	// dictSamples is how many bodies a dictionary is trained on at most,
	// and dictSampleBytes how many of their bytes: the builder's memory
	// grows with the bytes (about 13 times them, most of it live until it
	// ends), and 200 bodies of 1 KiB train as good a dictionary as 500.
	dictSamples     = 500
	dictSampleBytes = 256 << 10
	// sampleMax bounds the bytes of one sample.
	sampleMax = 8 << 10
	// dictMaxSize bounds a dictionary's size.
	dictMaxSize = 16 << 10
	// dictIDLen is the length of a dictionary's id.
	dictIDLen = 12
	// dictFits is the share of a body, in eighths, above which a body
	// compressed with the dictionary is compressed with zstd too, and the
	// smaller kept: bodies of a sender the dictionary was not trained on.
	dictFits = 5
	// fitWindow is how many compressed bodies a process judges its
	// dictionary's fit over, and retrainEvery how long it waits at least
	// from one training to the next.
	fitWindow    = 2000
	retrainEvery = time.Hour
)

// bodyDict is a dictionary bodies are compressed with.
type bodyDict struct {
	id string
	d  *s2.Dict
}

// dictID is the id of a dictionary's bytes.
func dictID(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:dictIDLen/2])
}

// newBodyDict reads a dictionary stored under id; an error when its bytes
// are not those of id or not a dictionary.
func newBodyDict(id string, b []byte) (*bodyDict, error) {
	if dictID(b) != id {
		return nil, fmt.Errorf("dictionary %s: its bytes are not those of its id", id)
	}
	d := s2.NewDict(b)
	if d == nil {
		return nil, fmt.Errorf("dictionary %s: not an S2 dictionary", id)
	}
	return &bodyDict{id: id, d: d}, nil
}

// encode is body compressed with the dictionary, headed by its id.
func (d *bodyDict) encode(body []byte) []byte {
	dst := make([]byte, dictIDLen+s2.MaxEncodedLen(len(body)))
	copy(dst, d.id)
	return dst[:dictIDLen+len(d.d.Encode(dst[dictIDLen:], body))]
}

// dictSource finds a dictionary by its id.
type dictSource func(id string) (*bodyDict, error)

// decompressDict reads a body compressed with a dictionary.
func decompressDict(z []byte, dicts dictSource) ([]byte, error) {
	if len(z) < dictIDLen {
		return nil, errors.New("dictionary body shorter than its dictionary's id")
	}
	if dicts == nil {
		return nil, fmt.Errorf("dictionary %s: no dictionaries to read it with", z[:dictIDLen])
	}
	d, err := dicts(string(z[:dictIDLen]))
	if err != nil {
		return nil, err
	}
	if err := checkS2Len(z[dictIDLen:]); err != nil {
		return nil, err
	}
	return d.d.Decode(nil, z[dictIDLen:])
}

// opener opens what the store reads back: sealed parts with keys, and
// bodies compressed with a dictionary with the ones dicts finds.
type opener struct {
	keys  *seal.Keys
	dicts dictSource
}

// dictState is a store's dictionary: the one it compresses with, those it
// has read, and the samples it trains one from.
type dictState struct {
	use   atomic.Pointer[bodyDict]
	known sync.Map // id → *bodyDict

	// sampling is set while bodies are wanted for training.
	sampling atomic.Bool
	mu       sync.Mutex
	samples  [][]byte
	size     int // the samples' bytes
	// want is how many samples to train on (dictSamples; tests lower it).
	want int
	// training runs train; Close waits for it. closed (under mu) is set
	// by Close before it waits: an accept still running then starts none.
	training sync.WaitGroup
	closed   bool

	// The fit of the dictionary in use (fitted): bodies compressed in the
	// window so far, and those it did not fit; when this process last
	// trained, or opened. window and every are fitWindow and
	// retrainEvery (tests lower them).
	fitMu        sync.Mutex
	seen, missed int
	trained      time.Time
	refitting    bool // refit runs
	window       int
	every        time.Duration
}

// dictKey is the hash of the store's dictionaries.
func (s *Store) dictKey() string { return s.k.dicts() }

// opener is what reads the store's events back.
func (s *Store) opener() opener { return opener{keys: s.keys, dicts: s.dictByID} }

// packer is how the store compresses a body now.
func (s *Store) packer() packer {
	p := packer{codec: s.codec}
	if p.codec == codecDict {
		p.dict = s.dict.use.Load()
	}
	return p
}

// startDict readies a store that compresses with a dictionary: it takes
// the store's dictionary if it has one, or starts sampling bodies for one.
// A dictionary named but not readable leaves the store on zstd.
func (s *Store) startDict(ctx context.Context) error {
	if s.codec != codecDict {
		return nil
	}
	s.dict.trained = time.Now()
	id, err := s.c.HGet(ctx, s.dictKey(), "current").Result()
	if errors.Is(err, redis.Nil) {
		s.dict.sampling.Store(true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("redisstore: dictionary: %w", err)
	}
	d, err := s.dictByID(id)
	if err != nil {
		// The bodies compressed with it cannot be read, but new ones can
		// be stored.
		s.log.Warn("redisstore: the store's dictionary cannot be read: bodies are compressed with zstd", "key", s.dictKey(), "err", err)
		return nil
	}
	s.dict.use.Store(d)
	return nil
}

// dictByID is the dictionary stored under id, read from Redis the first
// time.
func (s *Store) dictByID(id string) (*bodyDict, error) {
	if d, ok := s.dict.known.Load(id); ok {
		return d.(*bodyDict), nil
	}
	ctx, cancel := s.untilClose(10 * time.Second)
	defer cancel()
	b, err := s.c.HGet(ctx, s.dictKey(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dictionary %s: not in the store", id)
	}
	if err != nil {
		return nil, fmt.Errorf("dictionary %s: %w", id, err)
	}
	d, err := newBodyDict(id, b)
	if err != nil {
		return nil, err
	}
	got, _ := s.dict.known.LoadOrStore(id, d)
	return got.(*bodyDict), nil
}

// sample keeps body for training while the store wants samples, and starts
// the training with the last one wanted.
func (s *Store) sample(body []byte) {
	if !s.dict.sampling.Load() || len(body) < minCompress {
		return
	}
	s.dict.mu.Lock()
	defer s.dict.mu.Unlock()
	want := s.dict.want
	if want == 0 {
		want = dictSamples
	}
	if !s.dict.sampling.Load() || s.dict.closed {
		return
	}
	x := append([]byte(nil), body[:min(len(body), sampleMax)]...)
	s.dict.samples = append(s.dict.samples, x)
	s.dict.size += len(x)
	if len(s.dict.samples) < want && s.dict.size < dictSampleBytes {
		return
	}
	s.dict.sampling.Store(false)
	samples := s.dict.samples
	s.dict.samples, s.dict.size = nil, 0
	s.dict.training.Add(1)
	go func() {
		defer s.dict.training.Done()
		if err := s.train(samples); err != nil {
			switch {
			case errors.Is(err, errDictNoBetter):
				s.log.Info("redisstore: the dictionary in use is kept", "err", err)
			case s.dict.use.Load() != nil:
				s.log.Warn("redisstore: the dictionary in use is kept", "err", err)
			default:
				s.log.Warn("redisstore: bodies stay compressed with zstd", "err", err)
			}
			if errors.Is(err, errDictNotStored) {
				s.dict.sampling.Store(true) // train again on the next bodies
			}
		}
	}()
}

// errDictNotStored: a dictionary was trained, but Redis did not answer
// whether it is the store's.
var errDictNotStored = errors.New("store the dictionary")

// errDictNoBetter: a dictionary trained again does not fit recent bodies
// enough better than the one in use to replace it.
var errDictNoBetter = errors.New("no better than the dictionary in use")

// fitted counts bodies that a committer compressed with a dictionary,
// of which missed the dictionary did not fit (compressBody kept something
// else). At the end of a window in which more than a quarter missed, the
// store looks for a better one (refit).
func (s *Store) fitted(seen, missed int) {
	if seen == 0 {
		return
	}
	ds := &s.dict
	ds.fitMu.Lock()
	defer ds.fitMu.Unlock()
	ds.seen += seen
	ds.missed += missed
	window, every := ds.window, ds.every
	if window == 0 {
		window, every = fitWindow, retrainEvery
	}
	if ds.seen < window {
		return
	}
	poor := ds.missed*4 > ds.seen
	ds.seen, ds.missed = 0, 0
	if poor && !ds.sampling.Load() && !ds.refitting {
		ds.refitting = true
		ds.training.Add(1)
		go s.refit(every)
	}
}

// refit takes the store's dictionary when another process has replaced
// the one this process uses; else, unless this process trained less than
// every ago, it samples the bodies that come next to train a new one.
func (s *Store) refit(every time.Duration) {
	ds := &s.dict
	defer ds.training.Done()
	ctx, cancel := s.untilClose(10 * time.Second)
	defer cancel()
	id, err := s.c.HGet(ctx, s.dictKey(), "current").Result()
	// Without an answer from the store, nothing is trained: the next poor
	// window asks again.
	retrain := err == nil
	if cur := ds.use.Load(); err == nil && (cur == nil || id != cur.id) {
		if d, err := s.dictByID(id); err == nil {
			ds.use.Store(d)
			s.log.Info("redisstore: bodies are compressed with the dictionary another process trained", "dictionary", d.id)
			retrain = false
		}
	}
	ds.fitMu.Lock()
	defer ds.fitMu.Unlock()
	ds.refitting = false
	if retrain && time.Since(ds.trained) >= every {
		ds.trained = time.Now()
		ds.sampling.Store(true)
	}
}

// untilClose is a context that ends after timeout, or when the store
// closes: Close waits for the training goroutines that use it.
func (s *Store) untilClose(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// trainScript makes a dictionary the store's if the store's is still the
// one the process replaces (none: the store has none), and returns the
// store's: its id and bytes.
//
//	KEYS[1]  the dicts hash
//	ARGV[1]  the dictionary's id
//	ARGV[2]  its bytes
//	ARGV[3]  the id of the dictionary it replaces, "" for none (a store
//	         that has none takes it in any case)
var trainScript = redis.NewScript(`
local id = redis.call("HGET", KEYS[1], "current")
if not id or id == ARGV[3] then
	redis.call("HSET", KEYS[1], ARGV[1], ARGV[2], "current", ARGV[1])
	return {ARGV[1], ARGV[2]}
end
return {id, redis.call("HGET", KEYS[1], id)}
`)

// train builds a dictionary from samples, offers it to the store if it
// beats zstd on them, and takes the store's.
func (s *Store) train(samples [][]byte) error {
	b, err := dict.BuildS2Dict(samples, dict.Options{MaxDictSize: dictMaxSize, HashBytes: 8})
	if err != nil {
		return fmt.Errorf("train a dictionary: %w", err)
	}
	d, err := newBodyDict(dictID(b), b)
	if err != nil {
		return err
	}
	current := s.dict.use.Load()
	withDict, withZstd, withCurrent := 0, 0, 0
	for _, x := range samples {
		withDict += len(d.encode(x))
		withZstd += len(bodyEncoder.EncodeAll(x, nil))
		if current != nil {
			z, _ := compressBody(x, packer{codec: codecDict, dict: current})
			withCurrent += len(z)
		}
	}
	if withDict >= withZstd {
		return fmt.Errorf("a dictionary of %d bodies keeps %d bytes of them, zstd %d", len(samples), withDict, withZstd)
	}
	replaces := ""
	if current != nil {
		if withDict > withCurrent-withCurrent/8 {
			return fmt.Errorf("%w: a new dictionary keeps %d bytes of %d recent bodies, the one in use (%s) %d",
				errDictNoBetter, withDict, len(samples), current.id, withCurrent)
		}
		replaces = current.id
	}
	ctx, cancel := s.untilClose(30 * time.Second)
	defer cancel()
	res, err := trainScript.Run(ctx, s.c, []string{s.dictKey()}, d.id, b, replaces).StringSlice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %q", res)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errDictNotStored, err)
	}
	ours := res[0] == d.id
	if !ours {
		if d, err = newBodyDict(res[0], []byte(res[1])); err != nil {
			return err
		}
	}
	got, _ := s.dict.known.LoadOrStore(d.id, d)
	s.dict.use.Store(got.(*bodyDict))
	switch {
	case ours && replaces != "":
		s.log.Info("redisstore: bodies are compressed with a dictionary trained here on recent bodies, which the one in use did not fit",
			"dictionary", d.id, "replaces", replaces, "samples", len(samples), "bytes_kept", withDict, "bytes_kept_before", withCurrent)
	case ours:
		s.log.Info("redisstore: bodies are compressed with the dictionary trained here", "dictionary", d.id,
			"samples", len(samples), "bytes_kept", withDict, "bytes_kept_by_zstd", withZstd)
	default:
		s.log.Info("redisstore: bodies are compressed with the dictionary another process trained", "dictionary", d.id)
	}
	return nil
}

// repack is the stored string v of an event, its body as it came, with
// the body compressed with d when that is worth it (compressBody).
// Accepts leave this to the committers (acceptArgs): the encoder's 64 KiB
// table then grows the stacks of two goroutines, not of every
// connection's, which at full load made the collector let the heap grow
// by some 40 MiB. A string that cannot be read is sent as it is, for the
// script to store as it would have.
func repack(v string, d *bodyDict) (string, string) {
	p, err := splitEvent("", v)
	if err != nil || p.flag != "" {
		return v, p.flag
	}
	body, flag := compressBody([]byte(p.body), packer{codec: codecDict, dict: d})
	if flag == "" {
		return v, ""
	}
	var b strings.Builder
	b.Grow(len(v) - len(p.body) + len(body))
	b.WriteString(v[:1])
	writeEventParts(&b, p.received, p.hook, []byte(p.meta), body, flag)
	b.WriteString(v[p.records:])
	return b.String(), flag
}
