package mariadb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// binlogMagic starts every binary log file.
var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// Event types of the binary log (MariaDB's numbering) that mark where transactions end.
const (
	queryEvent             = 2
	stopEvent              = 3 // the server stopped: its next start writes the next file
	rotateEvent            = 4
	formatDescriptionEvent = 15
	xidEvent               = 16
	gtidEvent              = 162 // MariaDB's GTID event, which starts every event group

	headerLen      = 19
	artificialF    = 0x20 // LOG_EVENT_ARTIFICIAL_F: a rotate the server made up for the client, not in its file
	gtidStandalone = 1    // FL_STANDALONE: a group of one statement (DDL) with no COMMIT/XID after it
	queryPostLen   = 13
)

// txnEnd is the end of one committed transaction in a binlog file: the offset just past its last event (where
// a replay with --stop-position stops after it) and its events' timestamp (the server's clock, in seconds).
type txnEnd struct {
	End   int64
	Event time.Time
}

// scanner reads the events of one binlog file as its bytes arrive, and finds the transactions' ends.
type scanner struct {
	off        int64  // bytes of the file read so far: the end of the last complete event
	checksum   int    // bytes of checksum after each event's body (from the format description event)
	standalone bool   // the open group is a standalone statement: its query event ends it
	rotate     string // the next file, once the rotate event ending this one is read
	stopped    bool   // the file ends with a stop event (no rotate): the next file is the next number
}

// errNotBinlog is returned for bytes that do not start like a binary log file.
var errNotBinlog = errors.New("not a binary log file")

// feed reads the complete events in data, the file's bytes from s.off on, and returns the transactions that
// end in them and how many bytes it read (the rest is an event not complete yet).
func (s *scanner) feed(data []byte) ([]txnEnd, int, error) {
	n := 0
	if s.off == 0 {
		if len(data) < len(binlogMagic) {
			return nil, 0, nil
		}
		if !bytes.Equal(data[:len(binlogMagic)], binlogMagic) {
			return nil, 0, errNotBinlog
		}
		n = len(binlogMagic)
	}
	var out []txnEnd
	for len(data)-n >= headerLen {
		h := data[n:]
		size := int(binary.LittleEndian.Uint32(h[9:13]))
		if size < headerLen {
			return out, n, fmt.Errorf("binlog event at %d: size %d is shorter than its header", s.off+int64(n), size)
		}
		if len(h) < size {
			break
		}
		ev := h[:size]
		n += size
		end := s.off + int64(n)
		ts := time.Unix(int64(binary.LittleEndian.Uint32(ev[0:4])), 0).UTC()
		flags := binary.LittleEndian.Uint16(ev[17:19])
		body := ev[headerLen:]
		switch ev[4] {
		case formatDescriptionEvent:
			// ... post-header lengths, then the checksum algorithm (1 byte) and the event's own checksum (4)
			if len(body) >= 5 && body[len(body)-5] == 1 {
				s.checksum = 4
			} else {
				s.checksum = 0
			}
		case gtidEvent:
			s.standalone = len(body) >= 13 && body[12]&gtidStandalone != 0
		case xidEvent:
			s.standalone = false
			out = append(out, txnEnd{End: end, Event: ts})
		case queryEvent:
			q := s.query(body)
			switch {
			case s.standalone:
				s.standalone = false
				out = append(out, txnEnd{End: end, Event: ts})
			case bytes.Equal(q, []byte("COMMIT")):
				out = append(out, txnEnd{End: end, Event: ts})
			}
		case stopEvent:
			s.stopped = true
		case rotateEvent:
			if flags&artificialF == 0 && len(body) >= 8+s.checksum {
				s.rotate = string(body[8 : len(body)-s.checksum])
			}
		}
	}
	s.off += int64(n)
	return out, n, nil
}

// query is the statement of a query event's body.
func (s *scanner) query(body []byte) []byte {
	if len(body) < queryPostLen+s.checksum {
		return nil
	}
	body = body[:len(body)-s.checksum]
	dbLen := int(body[8])
	statusLen := int(binary.LittleEndian.Uint16(body[11:13]))
	start := queryPostLen + statusLen + dbLen + 1
	if start > len(body) {
		return nil
	}
	return body[start:]
}
