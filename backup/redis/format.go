package redis

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// The keys file (keys.rdmp) is Rewind's own container for the DUMP payloads of one Redis database:
//
//	magic   "REWINDRK" (8 bytes), version byte (1)
//	now     int64 big-endian: the server's clock at the pin, in Unix milliseconds
//	records 'K', uvarint len + key, int64 big-endian absolute expiry in Unix ms (0: none),
//	        uvarint len + DUMP payload
//	trailer 'E', uint64 big-endian number of records, uint32 big-endian CRC-32 (IEEE) of every byte before it
//
// A stream without its trailer, or whose count or CRC do not match, is rejected: a truncated or damaged file
// never restores as a smaller database.
const (
	magic       = "REWINDRK"
	fileVersion = 1

	// maxLen bounds keys and payloads (Redis's own proto-max-bulk-len default).
	maxLen = 512 << 20
)

// entry is one key of a dump.
type entry struct {
	Key      string
	ExpireAt int64 // Unix ms; 0: persistent
	Payload  []byte
}

// snapshot is the content of a keys file.
type snapshot struct {
	Now     int64 // server clock at the pin, Unix ms
	Entries []entry
}

// encode writes s to w in the keys-file format.
func encode(w io.Writer, s *snapshot) error {
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var buf [binary.MaxVarintLen64 + 8]byte
	bw.WriteString(magic)
	bw.WriteByte(fileVersion)
	binary.BigEndian.PutUint64(buf[:8], uint64(s.Now))
	bw.Write(buf[:8])
	for _, e := range s.Entries {
		bw.WriteByte('K')
		bw.Write(buf[:binary.PutUvarint(buf[:], uint64(len(e.Key)))])
		bw.WriteString(e.Key)
		binary.BigEndian.PutUint64(buf[:8], uint64(e.ExpireAt))
		bw.Write(buf[:8])
		bw.Write(buf[:binary.PutUvarint(buf[:], uint64(len(e.Payload)))])
		if _, err := bw.Write(e.Payload); err != nil {
			return err
		}
	}
	bw.WriteByte('E')
	binary.BigEndian.PutUint64(buf[:8], uint64(len(s.Entries)))
	bw.Write(buf[:8])
	if err := bw.Flush(); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(buf[:4], crc.Sum32())
	_, err := w.Write(buf[:4])
	return err
}

// errFormat marks a keys file that is not valid.
var errFormat = errors.New("not a valid Rewind Redis keys file")

// decoder reads a keys file, hashing what it reads.
type decoder struct {
	r   *bufio.Reader
	crc hash.Hash32
	n   int64
}

func (d *decoder) read(p []byte) error {
	if _, err := io.ReadFull(d.r, p); err != nil {
		return d.eof(err)
	}
	d.crc.Write(p)
	d.n += int64(len(p))
	return nil
}

func (d *decoder) eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated at byte %d", errFormat, d.n)
	}
	return err
}

func (d *decoder) byte() (byte, error) {
	var b [1]byte
	err := d.read(b[:])
	return b[0], err
}

func (d *decoder) int64() (int64, error) {
	var b [8]byte
	err := d.read(b[:])
	return int64(binary.BigEndian.Uint64(b[:])), err
}

func (d *decoder) uvarint() (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b, err := d.byte()
		if err != nil {
			return 0, err
		}
		if shift > 63 || (shift == 63 && b > 1) {
			return 0, fmt.Errorf("%w: bad length at byte %d", errFormat, d.n)
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
}

// bytes reads a length-prefixed string without trusting the length for its allocation.
func (d *decoder) bytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxLen {
		return nil, fmt.Errorf("%w: length %d too large at byte %d", errFormat, n, d.n)
	}
	b, err := io.ReadAll(io.LimitReader(d.r, int64(n)))
	if err != nil {
		return nil, err
	}
	d.crc.Write(b)
	d.n += int64(len(b))
	if uint64(len(b)) != n {
		return nil, fmt.Errorf("%w: truncated at byte %d", errFormat, d.n)
	}
	return b, nil
}

// decode reads a whole keys file and checks its trailer; it never panics on any input.
func decode(r io.Reader) (*snapshot, error) {
	d := &decoder{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.NewIEEE()}
	head := make([]byte, len(magic)+1)
	if err := d.read(head); err != nil {
		return nil, err
	}
	if string(head[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: bad magic", errFormat)
	}
	if head[len(magic)] != fileVersion {
		return nil, fmt.Errorf("%w: version %d is not supported (this Rewind reads version %d)", errFormat, head[len(magic)], fileVersion)
	}
	now, err := d.int64()
	if err != nil {
		return nil, err
	}
	s := &snapshot{Now: now}
	for {
		tag, err := d.byte()
		if err != nil {
			return nil, err
		}
		switch tag {
		case 'K':
			key, err := d.bytes()
			if err != nil {
				return nil, err
			}
			exp, err := d.int64()
			if err != nil {
				return nil, err
			}
			if exp < 0 {
				return nil, fmt.Errorf("%w: negative expiry at byte %d", errFormat, d.n)
			}
			payload, err := d.bytes()
			if err != nil {
				return nil, err
			}
			s.Entries = append(s.Entries, entry{Key: string(key), ExpireAt: exp, Payload: payload})
		case 'E':
			count, err := d.int64()
			if err != nil {
				return nil, err
			}
			sum := d.crc.Sum32()
			var b [4]byte
			if _, err := io.ReadFull(d.r, b[:]); err != nil {
				return nil, d.eof(err)
			}
			if binary.BigEndian.Uint32(b[:]) != sum {
				return nil, fmt.Errorf("%w: checksum mismatch", errFormat)
			}
			if count != int64(len(s.Entries)) {
				return nil, fmt.Errorf("%w: trailer counts %d keys, file has %d", errFormat, count, len(s.Entries))
			}
			if _, err := d.r.ReadByte(); err != io.EOF {
				return nil, fmt.Errorf("%w: data after the trailer", errFormat)
			}
			return s, nil
		default:
			return nil, fmt.Errorf("%w: unknown record %q at byte %d", errFormat, tag, d.n)
		}
	}
}

// crcJones is the CRC-64 (Jones polynomial, reflected, no final xor) that ends every DUMP payload.
var crcJones = crc64.MakeTable(0x95ac9329ac4bc9b5)

// payloadVersion checks a DUMP payload's footer (2-byte RDB version, 8-byte CRC-64 little-endian) and
// returns its RDB version.
func payloadVersion(p []byte) (int, error) {
	if len(p) < 11 {
		return 0, errors.New("DUMP payload too short")
	}
	body := p[:len(p)-8]
	want := binary.LittleEndian.Uint64(p[len(p)-8:])
	if got := ^crc64.Update(^uint64(0), crcJones, body); got != want {
		return 0, errors.New("DUMP payload checksum mismatch")
	}
	return int(binary.LittleEndian.Uint16(p[len(p)-10:])), nil
}
