package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// Events are sealed at rest when the store has keys (WithKeys): their
// headers, query, body and trace, the parts that carry what senders sent,
// each sealed on its own and bound to the event's id and the column's
// name, with the sealing key's id in the seal_key column. Text columns
// hold a sealed value in base64, the body column as it is. The id, hook,
// times, status, idempotency key and matched rules stay in clear: listings
// and deduplication read them, and they hold names from the config or a
// key the operator chose. Deliveries and attempts are not sealed.

var _ store.Resealer = (*Store)(nil)

// sealedColumns are an event's sealable columns as stored.
type sealedColumns struct {
	headers, query, trace string
	body                  any // NULL, a blob
	key                   string
}

// sealColumns returns the columns of event id as stored: sealed with the
// current key of keys, or as given when keys is nil.
func sealColumns(keys *seal.Keys, id, headers, query, trace string, body []byte) sealedColumns {
	if keys == nil {
		return sealedColumns{headers: headers, query: query, trace: trace, body: encodeBody(body)}
	}
	c := sealedColumns{
		headers: sealText(keys, id, "headers", headers),
		query:   sealText(keys, id, "query", query),
		key:     keys.Current(),
	}
	if trace != "" {
		c.trace = sealText(keys, id, "trace", trace)
	}
	if body != nil {
		c.body = keys.Seal(make([]byte, 0, len(body)+keys.Overhead()), body, sealAD(id, "body"))
	}
	return c
}

// sealAD binds a sealed value to its event and column.
func sealAD(id, column string) []byte {
	return append(append([]byte(id), 0), column...)
}

func sealText(keys *seal.Keys, id, column, text string) string {
	return base64.StdEncoding.EncodeToString(keys.Seal(nil, []byte(text), sealAD(id, column)))
}

func openText(keys *seal.Keys, id, column, text string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return "", &seal.RecordError{Kind: "event", ID: id, Part: column, Err: seal.ErrMalformed}
	}
	plain, err := keys.Open(nil, b, sealAD(id, column))
	if err != nil {
		return "", &seal.RecordError{Kind: "event", ID: id, Part: column, Err: err}
	}
	return string(plain), nil
}

// open replaces the row's sealed columns with what they seal. It changes
// nothing unless every one opens.
func (r *eventRow) open(keys *seal.Keys) error {
	id := r.ev.ID
	headers, err := openText(keys, id, "headers", r.headers)
	if err != nil {
		return err
	}
	query, err := openText(keys, id, "query", r.query)
	if err != nil {
		return err
	}
	trace := ""
	if r.trace != "" {
		if trace, err = openText(keys, id, "trace", r.trace); err != nil {
			return err
		}
	}
	body := r.ev.Body
	if body != nil {
		if body, err = keys.Open(nil, body, sealAD(id, "body")); err != nil {
			return &seal.RecordError{Kind: "event", ID: id, Part: "body", Err: err}
		}
		if body == nil {
			body = []byte{}
		}
	}
	r.headers, r.query, r.trace, r.ev.Body = headers, query, trace, body
	return nil
}

// OldestEventID reads the first event id of the events table.
func (s *Store) OldestEventID(ctx context.Context) (string, error) {
	var id string
	err := s.rdb.QueryRowContext(ctx, `SELECT id FROM events ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlitestore: oldest event: %w", err)
	}
	return id, nil
}

// Reseal seals anew under the store's current key the events after the
// given id, up to n of them, that are in clear or under another key. Each
// event is opened and sealed outside the writer; the writer replaces its
// columns only while the event is still sealed as it was read, so that
// two rotations at once write each event once. An event that does
// not open stops the batch before anything of it is written.
func (s *Store) Reseal(ctx context.Context, after string, n int) (store.Resealed, error) {
	if s.keys == nil {
		return store.Resealed{}, errors.New("sqlitestore: reseal: the store has no keys to seal with")
	}
	if n <= 0 {
		return store.Resealed{}, fmt.Errorf("sqlitestore: reseal: batch of %d: want at least 1", n)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, seal_key, headers, query, body, trace, body IS NOT NULL
		FROM events WHERE id > ? ORDER BY id LIMIT ?`, after, n)
	if err != nil {
		return store.Resealed{}, fmt.Errorf("sqlitestore: reseal: %w", err)
	}
	type change struct {
		id, from string
		c        sealedColumns
	}
	var (
		res     store.Resealed
		changes []change
	)
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var r eventRow
			if err := rows.Scan(&r.ev.ID, &r.sealKey, &r.headers, &r.query, &r.ev.Body, &r.trace, &r.hasBody); err != nil {
				return err
			}
			res.Examined++
			res.Next = r.ev.ID
			if r.hasBody && r.ev.Body == nil {
				r.ev.Body = []byte{}
			}
			from := r.sealKey
			if from != "" {
				// Those under the current key are opened too, so that a
				// wrong key under the current id is told, not passed over.
				if err := r.open(s.keys); err != nil {
					return err
				}
			}
			if from == s.keys.Current() {
				continue
			}
			changes = append(changes, change{r.ev.ID, from, sealColumns(s.keys, r.ev.ID, r.headers, r.query, r.trace, r.ev.Body)})
		}
		return rows.Err()
	}()
	if err != nil {
		return store.Resealed{}, fmt.Errorf("sqlitestore: reseal: %w", err)
	}
	if res.Examined < n {
		res.Next = ""
	}
	if len(changes) == 0 {
		return res, nil
	}
	err = s.write(ctx, func(w *writeTx) error {
		done := 0
		for _, ch := range changes {
			r, err := w.exec(`UPDATE events SET headers = ?, query = ?, body = ?, trace = ?, seal_key = ? WHERE id = ? AND seal_key = ?`,
				ch.c.headers, ch.c.query, ch.c.body, ch.c.trace, ch.c.key, ch.id, ch.from)
			if err != nil {
				return err
			}
			k, err := r.RowsAffected()
			if err != nil {
				return err
			}
			done += int(k)
		}
		res.Resealed = done
		return nil
	})
	if err != nil {
		return store.Resealed{}, fmt.Errorf("sqlitestore: reseal: %w", err)
	}
	return res, nil
}
