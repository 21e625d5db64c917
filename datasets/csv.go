package datasets

import (
	"bytes"
	"fmt"
)

// csvRecord is one CSV record and the 1-based line on which it starts.
type csvRecord struct {
	fields []string
	line   int
}

// csvSyntaxError is a CSV syntax problem at a 1-based line.
type csvSyntaxError struct {
	line int
	msg  string
}

func (e *csvSyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseCSV splits data into records by RFC 4180 with comma separators.
//
// Fields may be quoted with '"'; inside quotes, "" is a literal quote and any
// other byte (comma, LF, CR) is kept verbatim. That includes the CR of a CRLF
// inside a quoted field, exactly as Python's csv.reader keeps it when fed the
// raw lines of the file (which is how the HuggingFace MMLU builder read
// data.tar, so the questions lm-evaluation-harness sees keep their CRLFs).
// Outside quotes a record ends at LF or CRLF (or a final CR at end of input);
// empty lines are skipped.
//
// The parser is strict where Python's is lenient: a quote inside an unquoted
// field, anything but a separator or line end after a closing quote, a bare
// CR outside quotes, and an unterminated quoted field are errors (reported as
// *csvSyntaxError), since they almost always mean a corrupted file.
func parseCSV(data []byte) ([]csvRecord, error) {
	var records []csvRecord
	pos, line := 0, 1
	n := len(data)
	for pos < n {
		// Skip empty lines.
		if data[pos] == '\n' {
			pos++
			line++
			continue
		}
		if data[pos] == '\r' && (pos+1 == n || data[pos+1] == '\n') {
			pos += 2
			line++
			continue
		}
		rec := csvRecord{line: line}
		for {
			var field string
			if pos < n && data[pos] == '"' {
				startLine := line
				pos++
				var buf []byte
				for {
					q := bytes.IndexByte(data[pos:], '"')
					if q < 0 {
						return nil, &csvSyntaxError{startLine, "quoted field is not terminated (missing closing quote)"}
					}
					chunk := data[pos : pos+q]
					line += bytes.Count(chunk, []byte{'\n'})
					buf = append(buf, chunk...)
					pos += q + 1
					if pos < n && data[pos] == '"' {
						buf = append(buf, '"')
						pos++
						continue
					}
					break
				}
				field = string(buf)
			} else {
				start := pos
				for pos < n && data[pos] != ',' && data[pos] != '\n' && data[pos] != '\r' {
					if data[pos] == '"' {
						return nil, &csvSyntaxError{line, `bare quote '"' in an unquoted field (quote the whole field and double inner quotes)`}
					}
					pos++
				}
				field = string(data[start:pos])
			}
			rec.fields = append(rec.fields, field)
			if pos >= n {
				break
			}
			c := data[pos]
			if c == ',' {
				pos++
				continue
			}
			if c == '\n' {
				pos++
				line++
				break
			}
			if c == '\r' && (pos+1 == n || data[pos+1] == '\n') {
				pos += 2
				line++
				break
			}
			if c == '\r' {
				return nil, &csvSyntaxError{line, "carriage return outside quotes not followed by a line feed"}
			}
			return nil, &csvSyntaxError{line, fmt.Sprintf("unexpected %q after a closing quote (want ',' or end of line)", c)}
		}
		records = append(records, rec)
	}
	return records, nil
}
