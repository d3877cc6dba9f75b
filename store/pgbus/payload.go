package pgbus

import (
	"encoding/json"
	"fmt"
)

// MaxPayload is the largest NOTIFY payload PostgreSQL accepts (it must be
// shorter than 8000 bytes in the default configuration).
const MaxPayload = 7999

// message is one notification's payload: the publishing bus, so it can
// ignore its own messages (it delivered them locally already), and the IDs.
type message struct {
	From string   `json:"from"`
	IDs  []string `json:"ids"`
}

// encode packs ids into as few payloads of at most MaxPayload bytes as it
// can, in order. An ID too long to fit in a payload on its own is an error;
// the others are still packed.
func encode(from string, ids []string) (payloads []string, err error) {
	head, err := json.Marshal(message{From: from, IDs: []string{}})
	if err != nil {
		return nil, err
	}
	// head is {"from":"…","ids":[]}: IDs go between its last two bytes.
	prefix, suffix := string(head[:len(head)-2]), "]}"
	cur, n := prefix, 0
	for _, id := range ids {
		enc, err2 := json.Marshal(id)
		if err2 != nil {
			return nil, err2
		}
		if len(prefix)+len(enc)+len(suffix) > MaxPayload {
			err = fmt.Errorf("request ID of %d bytes does not fit in a notification", len(id))
			continue
		}
		sep := ""
		if n > 0 {
			sep = ","
		}
		if len(cur)+len(sep)+len(enc)+len(suffix) > MaxPayload {
			payloads = append(payloads, cur+suffix)
			cur, n, sep = prefix, 0, ""
		}
		cur += sep + string(enc)
		n++
	}
	if n > 0 {
		payloads = append(payloads, cur+suffix)
	}
	return payloads, err
}

func decode(payload string) (message, error) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return message{}, fmt.Errorf("decode notification: %w", err)
	}
	return m, nil
}
