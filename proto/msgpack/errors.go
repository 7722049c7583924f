package msgpack

import "errors"

// Errors returned by the readers. On any error a reader consumes nothing: the
// returned rest is the input unchanged.
var (
	// ErrShort means the input ends before the value does. Read more input
	// and retry with the longer buffer.
	ErrShort = errors.New("msgpack: short input")

	// ErrTooDeep means containers are nested deeper than MaxDepth.
	ErrTooDeep = errors.New("msgpack: nesting too deep")

	// ErrInvalid means the input holds the never-used format byte 0xc1.
	ErrInvalid = errors.New("msgpack: invalid format byte")

	// ErrRange means an integer does not fit the requested Go type, such as
	// a negative number read with ReadUint.
	ErrRange = errors.New("msgpack: integer out of range")
)

// A TypeError reports a value of the wrong type for the reader called, such
// as ReadRaw on an integer. Got is InvalidType for the byte 0xc1.
type TypeError struct {
	Want Type // what the reader decodes
	Got  Type // what the input holds
}

func (e *TypeError) Error() string {
	return "msgpack: want " + e.Want.String() + ", got " + e.Got.String()
}

// typeErr builds the error for a reader wanting want at the format byte c.
// The byte 0xc1 is reported as ErrInvalid rather than a TypeError.
func typeErr(want Type, c byte) error {
	if c == mNeverUsed {
		return ErrInvalid
	}
	return &TypeError{Want: want, Got: typeOf(c)}
}
