package configs

import (
	"reflect"
	"strings"
	"sync"
)

// field is one leaf key of the schema, found by reflection over the toml tags
// of Config. Decoding, encoding, validation and the reference all walk this
// one list, so a new struct field is a new key everywhere at once.
type field struct {
	key       string       // dotted key, e.g. "train.lr"
	section   string       // "train"; "" for top-level keys such as method
	index     []int        // reflect field index path from Config
	typ       reflect.Type // Go type of the field
	expandEnv bool         // ${VAR} expansion applies (tag env:"expand")
}

// schema is the reflected key list, in declaration order, plus lookups.
type schema struct {
	fields   []field
	byKey    map[string]*field
	sections map[string]bool
}

var loadSchema = sync.OnceValue(func() *schema {
	s := &schema{byKey: map[string]*field{}, sections: map[string]bool{}}
	top := reflect.TypeFor[Config]()
	for i := range top.NumField() {
		f := top.Field(i)
		if !f.IsExported() || f.Tag.Get("toml") == "-" {
			continue // not a key
		}
		name := tomlName(f)
		if f.Type.Kind() != reflect.Struct {
			s.fields = append(s.fields, newField(name, "", []int{i}, f))
			continue
		}
		s.sections[name] = true
		for j := range f.Type.NumField() {
			g := f.Type.Field(j)
			s.fields = append(s.fields, newField(name+"."+tomlName(g), name, []int{i, j}, g))
		}
	}
	for i := range s.fields {
		s.byKey[s.fields[i].key] = &s.fields[i]
	}
	return s
})

func newField(key, section string, index []int, f reflect.StructField) field {
	switch f.Type.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
	case reflect.Slice:
		if f.Type.Elem().Kind() != reflect.String {
			panic("configs: unsupported slice type for key " + key)
		}
	default:
		panic("configs: unsupported type for key " + key)
	}
	return field{key: key, section: section, index: index, typ: f.Type, expandEnv: f.Tag.Get("env") == "expand"}
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		panic("configs: field " + f.Name + " has no toml tag")
	}
	return name
}

// Keys returns every leaf key of the schema ("method", "model.path", ...)
// in declaration order.
func Keys() []string {
	s := loadSchema()
	keys := make([]string, len(s.fields))
	for i, f := range s.fields {
		keys[i] = f.key
	}
	return keys
}

// value returns the field of c addressed by f.
func (f *field) value(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

// typeName is the TOML type the field expects, as used in messages and in the
// reference.
func (f *field) typeName() string {
	switch f.typ.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "float"
	default:
		return "array of strings"
	}
}
