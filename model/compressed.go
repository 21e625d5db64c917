package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// A compressed model directory is a HuggingFace-style model directory
// (config.json, model.safetensors, tokenizer files) in which the pruned
// projection weights are stored in the bitmap form of package kernels/bitmap
// instead of densely. A compressed weight P (for example
// "model.layers.0.self_attn.q_proj.weight", rows × cols) is replaced by three
// tensors:
//
//	P.bitmap   U16 [rows, ceil(cols/16)]  bit j of mask c of row r ⇔ W[r, 16c+j] ≠ 0
//	P.row_ptr  U32 [rows+1]               where each row's values start (CSR indptr)
//	P.values   BF16 | F16 | F32 [nnz]     the nonzeros, row by row, left to right
//
// The NF4 base formats (value_dtype "nf4", format version 2; see
// bitmap.NF4 for the code book, blocks and nibble order) store instead
//
//	P.bitmap         U16 [rows, ceil(cols/16)]  bitmap-nf4 only, as above
//	P.row_ptr        U32 [rows+1]               bitmap-nf4 only, as above
//	P.nf4            U8  [ceil(n/2)]            4-bit code-book indices, two per byte, low nibble first
//	P.absmax         F32 [ceil(n/64)]           the scale of each block of 64 values, or with double quantization:
//	P.absmax_q       I8  [ceil(n/64)]           the scales quantized, scale = q·absmax2/127 + offset
//	P.absmax2        F32 [ceil(n/64/256)]       the absmax of each block of 256 centred scales
//	P.absmax_offset  F32 [1]                    the mean of the scales
//
// where n is nnz (bitmap-nf4) or rows·cols (dense-nf4, "layout": "dense").
// The header's __metadata__ entry "salr_compression" is a JSON object
//
//	{"format": "salr-bitmap", "version": 1, "chunk_cols": 16, "value_dtype": "bf16",
//	 "tensors": {P: {"shape": [rows, cols], "nnz": nnz}, ...},
//	 "crc32c": {T: checksum, ...}}
//
// (version 2 for value_dtype "nf4", whose tensors also give "layout":
// "bitmap" or "dense" and "double_quant": true or false; a reader of
// version 1 refuses such files by their version)
// listing every compressed weight, and the CRC-32C (Castagnoli) checksum of
// the data bytes of every tensor T in the file, which loading verifies. Files
// written before the checksums existed have no "crc32c" entry and load
// without that verification. All other tensors are stored densely under
// their HF names (BF16, F16 or F32, as config.json's torch_dtype says).
// Optionally the file also carries one low-rank adapter per projection M
// (e.g. "model.layers.0.self_attn.q_proj"), y += ((x Aᵀ) ⊙ scale) Bᵀ:
//
//	M.adapter.A      F32 [r, in]
//	M.adapter.B      F32 [out, r]  (unscaled)
//	M.adapter.scale  F32 [r]       per-rank scale
//
// described by the metadata entry "salr_adapters":
// {"version": 1, "modules": {M: {"rank": r, "parts": <free-form JSON>}}}.
// The file ends with a 64-byte U8 tensor "salr_compression.tail_padding" so
// that every values tensor is followed by at least 64 bytes of the mapped
// file: the vector kernels may load a whole chunk of 16 values past the last
// nonzero, so the values are used in place from the memory map.
//
// Only SALR reads such files (HF tools do not know the bitmap tensors); a run
// directory's base/ holds the same model densely for them.
const (
	CompressedFormatName    = "salr-bitmap"
	CompressedFormatVersion = 1
	// CompressedNF4Version is the version of files whose values are NF4
	// (value_dtype "nf4"); this build reads both versions.
	CompressedNF4Version = 2
	nf4ValueDType        = "nf4"
)

// Metadata keys and tensor-name suffixes of the compressed format.
const (
	CompressionMetadataKey = "salr_compression"
	AdaptersMetadataKey    = "salr_adapters"

	BitmapSuffix       = ".bitmap"
	RowPtrSuffix       = ".row_ptr"
	ValuesSuffix       = ".values"
	NF4CodesSuffix     = ".nf4"
	AbsmaxSuffix       = ".absmax"
	AbsmaxQSuffix      = ".absmax_q"
	Absmax2Suffix      = ".absmax2"
	AbsmaxOffsetSuffix = ".absmax_offset"
	AdapterASuffix     = ".adapter.A"
	AdapterBSuffix     = ".adapter.B"
	AdapterScaleSuffix = ".adapter.scale"

	tailPaddingName  = "salr_compression.tail_padding"
	tailPaddingBytes = 64
	adaptersVersion  = 1
)

// compressionMeta is the JSON of the salr_compression metadata entry.
type compressionMeta struct {
	Format     string                          `json:"format"`
	Version    int                             `json:"version"`
	ChunkCols  int                             `json:"chunk_cols"`
	ValueDType string                          `json:"value_dtype"`
	Tensors    map[string]compressedTensorMeta `json:"tensors"`
	// CRC32C maps every tensor of the file to the CRC-32C of its data
	// bytes; nil in files written before the checksums existed.
	CRC32C map[string]uint32 `json:"crc32c,omitempty"`
}

// compressedTensorMeta describes one compressed weight.
type compressedTensorMeta struct {
	Shape []int `json:"shape"`
	NNZ   int   `json:"nnz"`
	// Layout ("bitmap" or "dense") and DoubleQuant describe NF4 tensors.
	Layout      string `json:"layout,omitempty"`
	DoubleQuant bool   `json:"double_quant,omitempty"`
}

// The layouts of NF4 tensors.
const (
	layoutBitmap = "bitmap"
	layoutDense  = "dense"
)

// adaptersMeta is the JSON of the salr_adapters metadata entry.
type adaptersMeta struct {
	Version int                    `json:"version"`
	Modules map[string]adapterMeta `json:"modules"`
}

// adapterMeta describes one module's adapter.
type adapterMeta struct {
	Rank  int             `json:"rank"`
	Parts json.RawMessage `json:"parts,omitempty"`
}

// ParamsFileOptions configures WriteParams.
type ParamsFileOptions struct {
	// DType stores the dense tensors: F32, BF16 or F16.
	DType safetensors.DType
	// Compressed writes a compressed model directory: every base that is a
	// *bitmap.Matrix keeps its bitmap form. Otherwise such bases are decoded
	// and the directory is a plain HF model.
	Compressed bool
	// Adapters also stores each projection's Adapter (compressed only).
	Adapters bool
	// AdapterParts optionally describes the adapter of a module (by HF
	// module name); the JSON is kept in the metadata as it is.
	AdapterParts map[string]json.RawMessage
	// Prepared, when set, also stores a prepared base's settings and
	// initial SVD factors (compressed only; see PreparedMetadataKey).
	Prepared *Prepared
	// Overwrite replaces the model files of a directory that already holds
	// a model (as ForceOverwrite does for WriteHF).
	Overwrite bool
}

// WriteParams writes p as a model directory: config.json (torch_dtype from
// o.DType) and one model.safetensors, each written atomically (the weights
// first, config.json last), bases in whatever storage they have converted as
// o says. The tokenizer is not written. A directory that already holds a
// model is refused unless o.Overwrite is set.
func WriteParams(dir string, p *Params[float32], o ParamsFileOptions) error {
	switch o.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
	default:
		return fmt.Errorf("model: WriteParams: dtype %q is not one of F32, BF16, F16", o.DType)
	}
	if (o.Adapters || o.Prepared != nil) && !o.Compressed {
		return errors.New("model: WriteParams: adapters and prepared factors are only stored in compressed model files")
	}
	cfg := p.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("model: WriteParams: %w", err)
	}
	sources, err := paramSources(p)
	if err != nil {
		return err
	}
	expected := cfg.TensorShapes()
	meta := compressionMeta{Format: CompressedFormatName, Version: CompressedFormatVersion, ChunkCols: bitmap.ChunkCols,
		Tensors: map[string]compressedTensorMeta{}}
	var valueDType string // of the compressed weights: "bf16", "fp16", "fp32" or "nf4"
	var tensors []safetensors.Tensor
	var lazy []lazyTensor
	for _, name := range slices.Sorted(maps.Keys(expected)) {
		shape := expected[name]
		src, ok := sources[name]
		if !ok {
			return fmt.Errorf("model: WriteParams: the parameters lack tensor %q", name)
		}
		if src.mat != nil {
			if src.mat.Rows() != shape[0] || src.mat.Cols() != shape[1] {
				return fmt.Errorf("model: WriteParams: %s is %d×%d, the configuration implies %v", name, src.mat.Rows(), src.mat.Cols(), shape)
			}
			if vt := compressedValueDType(src.mat); vt != "" && o.Compressed {
				if valueDType != "" && vt != valueDType {
					return fmt.Errorf("model: WriteParams: %s stores %s values, other weights %s; a compressed file has one value dtype", name, vt, valueDType)
				}
				valueDType = vt
				switch m := src.mat.(type) {
				case *bitmap.Matrix:
					tensors = append(tensors, bitmapTensors(name, m)...)
					meta.Tensors[name] = compressedTensorMeta{Shape: shape, NNZ: m.NNZ()}
				case *bitmap.NF4:
					tensors = append(tensors, nf4Tensors(name, m)...)
					tm := compressedTensorMeta{Shape: shape, NNZ: m.NNZ(), Layout: layoutBitmap, DoubleQuant: m.DoubleQuant()}
					if m.Dense() {
						tm.Layout = layoutDense
					}
					meta.Tensors[name] = tm
				}
				continue
			}
			// Converted when the file is written, one at a time: a dense
			// copy of a 7B model's bases would not fit in memory at once.
			mat, name := src.mat, name
			lazy = append(lazy, lazyTensor{safetensors.TensorInfo{Name: name, DType: o.DType, Shape: shape}, func() ([]byte, error) {
				data, err := denseBytes(mat, o.DType)
				if err != nil {
					return nil, fmt.Errorf("model: WriteParams: %s: %w", name, err)
				}
				return data, nil
			}})
			continue
		}
		if len(src.vec) != shape[0] {
			return fmt.Errorf("model: WriteParams: %s has %d values, the configuration implies %v", name, len(src.vec), shape)
		}
		data, err := float32Bytes(src.vec, o.DType)
		if err != nil {
			return err
		}
		tensors = append(tensors, safetensors.Tensor{Name: name, DType: o.DType, Shape: shape, Data: data})
	}
	var metadata map[string]string
	if o.Compressed {
		// The checksums in the header need every tensor's data first.
		for _, t := range lazy {
			data, err := t.bytes()
			if err != nil {
				return err
			}
			tensors = append(tensors, safetensors.Tensor{Name: t.info.Name, DType: t.info.DType, Shape: t.info.Shape, Data: data})
		}
		lazy = nil
		if valueDType == "" {
			valueDType = bitmapDTypeOf(o.DType).String()
		}
		meta.ValueDType = valueDType
		if valueDType == nf4ValueDType {
			meta.Version = CompressedNF4Version
		}
		metadata = map[string]string{}
		if o.Adapters {
			adapterTensors, adJSON, err := adapterEntries(p, o.AdapterParts)
			if err != nil {
				return err
			}
			tensors = append(tensors, adapterTensors...)
			metadata[AdaptersMetadataKey] = adJSON
		}
		if o.Prepared != nil {
			prTensors, prJSON, err := preparedEntries(p, o.Prepared)
			if err != nil {
				return err
			}
			tensors = append(tensors, prTensors...)
			metadata[PreparedMetadataKey] = prJSON
		}
		tensors = append(tensors, safetensors.Tensor{Name: tailPaddingName, DType: safetensors.U8,
			Shape: []int{tailPaddingBytes}, Data: make([]byte, tailPaddingBytes)})
		meta.CRC32C = tensorChecksums(tensors)
		metaJSON, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		metadata[CompressionMetadataKey] = string(metaJSON)
	}
	for _, t := range tensors {
		lazy = append(lazy, lazyTensor{t.Info(), func() ([]byte, error) { return t.Data, nil }})
	}
	return writeModelFiles(dir, cfg, o.DType, lazy, metadata, o.Overwrite)
}

// lazyTensor is a tensor to write whose data is made when it is written.
type lazyTensor struct {
	info  safetensors.TensorInfo
	bytes func() ([]byte, error)
}

// crc32cTable is the Castagnoli polynomial's table (hardware-accelerated on
// amd64 and arm64).
var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// tensorChecksums maps each tensor's name to the CRC-32C of its data.
func tensorChecksums(tensors []safetensors.Tensor) map[string]uint32 {
	out := make(map[string]uint32, len(tensors))
	for _, t := range tensors {
		out[t.Name] = crc32.Checksum(t.Data, crc32cTable)
	}
	return out
}

// verifyChecksums checks every tensor of the file against the CRC-32C the
// metadata records for it, in one pass over the data section.
func (c compressedFile) verifyChecksums(sums map[string]uint32) error {
	names := c.f.Names()
	for _, name := range names {
		want, ok := sums[name]
		if !ok {
			return fmt.Errorf("%s: tensor %q has no checksum in metadata %q", c.path, name, CompressionMetadataKey)
		}
		info, _ := c.f.Info(name)
		if got := crc32.Checksum(c.raw[c.dataStart+int(info.Begin):c.dataStart+int(info.End)], crc32cTable); got != want {
			return fmt.Errorf("%s: tensor %q is corrupted: its CRC-32C is %08x, metadata %q records %08x", c.path, name, got, CompressionMetadataKey, want)
		}
	}
	if len(sums) != len(names) {
		for _, name := range slices.Sorted(maps.Keys(sums)) {
			if _, ok := c.f.Info(name); !ok {
				return fmt.Errorf("%s: metadata %q has a checksum of tensor %q, which the file lacks", c.path, CompressionMetadataKey, name)
			}
		}
	}
	return nil
}

// paramSource is one tensor of a Params: a matrix in any storage, or a
// vector.
type paramSource struct {
	mat kernels.Matrix[float32]
	vec []float32
}

// paramSources lists the tensors of p under their HF names.
func paramSources(p *Params[float32]) (map[string]paramSource, error) {
	cfg := p.Config
	if len(p.Layers) != cfg.Layers {
		return nil, fmt.Errorf("model: parameters have %d layers, the configuration %d", len(p.Layers), cfg.Layers)
	}
	if p.Embed.Rows() != cfg.Vocab || p.Embed.Cols() != cfg.Hidden {
		return nil, fmt.Errorf("model: the embedding is %d×%d, want %d×%d", p.Embed.Rows(), p.Embed.Cols(), cfg.Vocab, cfg.Hidden)
	}
	out := map[string]paramSource{
		EmbedTokensName: {mat: p.Embed},
		FinalNormName:   {vec: p.Norm},
	}
	if !cfg.TieEmbeddings {
		out[LMHeadName] = paramSource{mat: p.Head}
	}
	for l := range p.Layers {
		L := &p.Layers[l]
		out[LayerTensorName(l, "input_layernorm.weight")] = paramSource{vec: L.AttnNorm}
		out[LayerTensorName(l, "post_attention_layernorm.weight")] = paramSource{vec: L.MLPNorm}
		lins := L.Linears()
		if want := cfg.LayerModules(l); len(lins) != len(want) {
			return nil, fmt.Errorf("model: layer %d has %d projections, the configuration %d", l, len(lins), len(want))
		}
		lins = append(lins, L.Gates()...)
		for _, lin := range lins {
			if lin == nil || lin.Base == nil {
				return nil, fmt.Errorf("model: layer %d has a projection without a base", l)
			}
			out[lin.Module+".weight"] = paramSource{mat: lin.Base}
			if lin.Bias != nil {
				out[lin.Module+".bias"] = paramSource{vec: lin.Bias}
			}
		}
	}
	return out, nil
}

// bitmapTensors are the three tensors that store the compressed weight name;
// they alias bm's storage.
func bitmapTensors(name string, bm *bitmap.Matrix) []safetensors.Tensor {
	parts := bm.Parts()
	values := safetensors.Tensor{Name: name + ValuesSuffix, DType: valueDTypeOf(parts.DType), Shape: []int{bm.NNZ()}}
	if parts.DType == bitmap.F32 {
		values.Data = safetensors.Float32View(parts.Values32)
	} else {
		values.Data = littleEndianBytes(parts.Values16)
	}
	return []safetensors.Tensor{
		{Name: name + BitmapSuffix, DType: safetensors.U16, Shape: []int{parts.Rows, bitmap.ChunksPerRow(parts.Cols)}, Data: littleEndianBytes(parts.Bitmap)},
		{Name: name + RowPtrSuffix, DType: safetensors.U32, Shape: []int{parts.Rows + 1}, Data: littleEndianBytes(parts.RowPtr)},
		values,
	}
}

// compressedValueDType is the value dtype a compressed file stores m's
// values in ("bf16", "fp16", "fp32", "nf4"), or "" when m is stored densely.
func compressedValueDType(m kernels.Matrix[float32]) string {
	switch w := m.(type) {
	case *bitmap.Matrix:
		return w.DType().String()
	case *bitmap.NF4:
		return nf4ValueDType
	}
	return ""
}

// nf4Tensors are the tensors that store the NF4 weight name; they alias m's
// storage.
func nf4Tensors(name string, m *bitmap.NF4) []safetensors.Tensor {
	p := m.Parts()
	var out []safetensors.Tensor
	if !p.Dense() {
		out = append(out,
			safetensors.Tensor{Name: name + BitmapSuffix, DType: safetensors.U16, Shape: []int{p.Rows, bitmap.ChunksPerRow(p.Cols)}, Data: littleEndianBytes(p.Bitmap)},
			safetensors.Tensor{Name: name + RowPtrSuffix, DType: safetensors.U32, Shape: []int{p.Rows + 1}, Data: littleEndianBytes(p.RowPtr)})
	}
	out = append(out, safetensors.Tensor{Name: name + NF4CodesSuffix, DType: safetensors.U8, Shape: []int{len(p.Codes)}, Data: p.Codes})
	if !p.DoubleQuant() {
		return append(out, safetensors.Tensor{Name: name + AbsmaxSuffix, DType: safetensors.F32, Shape: []int{len(p.Absmax)}, Data: safetensors.Float32View(p.Absmax)})
	}
	q := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(p.QAbsmax))), len(p.QAbsmax))
	return append(out,
		safetensors.Tensor{Name: name + AbsmaxQSuffix, DType: safetensors.I8, Shape: []int{len(q)}, Data: q},
		safetensors.Tensor{Name: name + Absmax2Suffix, DType: safetensors.F32, Shape: []int{len(p.Absmax2)}, Data: safetensors.Float32View(p.Absmax2)},
		safetensors.Tensor{Name: name + AbsmaxOffsetSuffix, DType: safetensors.F32, Shape: []int{1}, Data: safetensors.Float32View([]float32{p.Offset})})
}

// adapterEntries are the adapter tensors of p and the salr_adapters metadata.
func adapterEntries(p *Params[float32], parts map[string]json.RawMessage) ([]safetensors.Tensor, string, error) {
	meta := adaptersMeta{Version: adaptersVersion, Modules: map[string]adapterMeta{}}
	var tensors []safetensors.Tensor
	for _, L := range p.Layers {
		for _, lin := range L.Linears() {
			a := lin.Adapter
			if a == nil {
				continue
			}
			in, out := lin.Base.Cols(), lin.Base.Rows()
			if a.R <= 0 || len(a.A) != a.R*in || len(a.B) != out*a.R || len(a.Scale) != a.R {
				return nil, "", fmt.Errorf("model: WriteParams: adapter of %s: rank %d with %d, %d and %d values does not fit %d×%d", lin.Module, a.R, len(a.A), len(a.B), len(a.Scale), out, in)
			}
			tensors = append(tensors,
				safetensors.Tensor{Name: lin.Module + AdapterASuffix, DType: safetensors.F32, Shape: []int{a.R, in}, Data: safetensors.Float32View(a.A)},
				safetensors.Tensor{Name: lin.Module + AdapterBSuffix, DType: safetensors.F32, Shape: []int{out, a.R}, Data: safetensors.Float32View(a.B)},
				safetensors.Tensor{Name: lin.Module + AdapterScaleSuffix, DType: safetensors.F32, Shape: []int{a.R}, Data: safetensors.Float32View(a.Scale)})
			meta.Modules[lin.Module] = adapterMeta{Rank: a.R, Parts: parts[lin.Module]}
		}
	}
	for module := range parts {
		if _, ok := meta.Modules[module]; !ok {
			return nil, "", fmt.Errorf("model: WriteParams: adapter parts given for %s, which has no adapter", module)
		}
	}
	b, err := json.Marshal(meta)
	return tensors, string(b), err
}

// denseBytes stores m densely in dtype, decoding a compressed matrix.
func denseBytes(m kernels.Matrix[float32], dtype safetensors.DType) ([]byte, error) {
	switch w := m.(type) {
	case *kernels.Dense[float32]:
		return float32Bytes(w.W, dtype)
	case *bitmap.DenseBF16:
		if dtype == safetensors.BF16 {
			return littleEndianBytes(w.Bits()), nil
		}
	}
	dec, ok := m.(interface{ Decode(dst []float32) })
	if !ok {
		return nil, fmt.Errorf("cannot store a base of type %T", m)
	}
	w := make([]float32, m.Rows()*m.Cols())
	dec.Decode(w)
	return float32Bytes(w, dtype)
}

// tensorBytes encodes a checkpoint tensor in dtype: bf16 values are stored
// as they are (a view) when dtype is BF16, and widened otherwise.
func tensorBytes(t *Tensor, dtype safetensors.DType) ([]byte, error) {
	if t.BF16 != nil && dtype == safetensors.BF16 {
		return littleEndianBytes(t.BF16), nil
	}
	return float32Bytes(t.Float32(), dtype)
}

// float32Bytes encodes values in dtype (a view, no copy, for F32).
func float32Bytes(values []float32, dtype safetensors.DType) ([]byte, error) {
	if dtype == safetensors.F32 {
		return safetensors.Float32View(values), nil
	}
	return safetensors.EncodeFloat32(values, dtype)
}

// writeModelFiles writes model.safetensors and then config.json into dir
// (each atomically), refusing to replace an existing model unless overwrite
// is set, and removes a stale sharded copy afterwards.
func writeModelFiles(dir string, cfg Config, dtype safetensors.DType, tensors []lazyTensor, metadata map[string]string, overwrite bool) error {
	cfg.TorchDtype = dtype.TorchName()
	configJSON, err := cfg.MarshalHF()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	staleShards, err := existingModelFiles(dir, overwrite)
	if err != nil {
		return err
	}
	infos := make([]safetensors.TensorInfo, len(tensors))
	data := make(map[string]func() ([]byte, error), len(tensors))
	for i, t := range tensors {
		infos[i] = t.info
		data[t.info.Name] = t.bytes
	}
	layout, err := safetensors.NewLayout(infos, metadata)
	if err != nil {
		return err
	}
	err = safetensors.WriteStream(filepath.Join(dir, safetensors.SingleFileName), layout, func(t safetensors.TensorInfo, w io.Writer) error {
		b, err := data[t.Name]()
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	err = atomicfile.Write(filepath.Join(dir, HFConfigFileName), func(w io.Writer) error {
		_, err := w.Write(configJSON)
		return err
	})
	if err != nil {
		return err
	}
	for _, stale := range staleShards {
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// valueDTypes pairs each bitmap value type with its safetensors dtype.
var valueDTypes = []struct {
	bitmap      bitmap.DType
	safetensors safetensors.DType
}{{bitmap.BF16, safetensors.BF16}, {bitmap.F16, safetensors.F16}, {bitmap.F32, safetensors.F32}}

// valueDTypeOf is the safetensors dtype of bitmap values of type dt.
func valueDTypeOf(dt bitmap.DType) safetensors.DType {
	for _, p := range valueDTypes {
		if p.bitmap == dt {
			return p.safetensors
		}
	}
	return safetensors.F32
}

// bitmapDTypeOf is the bitmap value type of a floating-point safetensors
// dtype (F32 for anything but BF16 and F16).
func bitmapDTypeOf(dt safetensors.DType) bitmap.DType {
	for _, p := range valueDTypes {
		if p.safetensors == dt {
			return p.bitmap
		}
	}
	return bitmap.F32
}

// IsCompressedDir reports whether dir holds a compressed model (its
// model.safetensors carries the salr_compression metadata).
func IsCompressedDir(dir string) bool {
	f, err := safetensors.Open(filepath.Join(dir, safetensors.SingleFileName))
	if err != nil {
		return false
	}
	defer f.Close()
	_, ok := f.Metadata()[CompressionMetadataKey]
	return ok
}

// loadCompressed reads the compressed model directory dir whose
// configuration is cfg: its model.safetensors is memory-mapped and the
// bitmap arrays are used in place.
func loadCompressed(dir string, cfg Config) (*Checkpoint, error) {
	path := filepath.Join(dir, safetensors.SingleFileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: a compressed model is stored in one %s: %w", dir, safetensors.SingleFileName, err)
	}
	m, err := safetensors.MapFile(path)
	if err != nil {
		return nil, err
	}
	ck, err := parseCompressed(m.Data, path, cfg, true)
	if err != nil {
		m.Close()
		return nil, err
	}
	ck.Source = dir
	ck.release = m.Close
	return ck, nil
}

// parseCompressed builds a checkpoint on the bytes of a compressed
// model.safetensors (named path in errors). Every array is validated before
// a kernel can see it: a corrupted file is an error naming the file and the
// tensor.
func parseCompressed(data []byte, path string, cfg Config, mapped bool) (*Checkpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := safetensors.Parse(data, path)
	if err != nil {
		return nil, err
	}
	metadata := f.Metadata()
	var meta compressionMeta
	if err := json.Unmarshal([]byte(metadata[CompressionMetadataKey]), &meta); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v", path, CompressionMetadataKey, err)
	}
	if meta.Format != CompressedFormatName || meta.Version < CompressedFormatVersion || meta.Version > CompressedNF4Version || meta.ChunkCols != bitmap.ChunkCols {
		return nil, fmt.Errorf("%s: metadata %q: format %q version %d with %d-column chunks; this build reads %q versions %d and %d with %d",
			path, CompressionMetadataKey, meta.Format, meta.Version, meta.ChunkCols, CompressedFormatName, CompressedFormatVersion, CompressedNF4Version, bitmap.ChunkCols)
	}
	nf4 := meta.ValueDType == nf4ValueDType
	var valueDType bitmap.DType
	if nf4 {
		if meta.Version != CompressedNF4Version {
			return nil, fmt.Errorf("%s: metadata %q: value dtype nf4 needs format version %d, the file says %d", path, CompressionMetadataKey, CompressedNF4Version, meta.Version)
		}
	} else if valueDType, err = bitmap.ParseDType(meta.ValueDType); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v (or nf4)", path, CompressionMetadataKey, err)
	} else if meta.Version != CompressedFormatVersion {
		return nil, fmt.Errorf("%s: metadata %q: value dtype %s is format version %d, the file says version %d", path, CompressionMetadataKey, valueDType, CompressedFormatVersion, meta.Version)
	}
	file := compressedFile{f: f, raw: data, dataStart: 8 + int(binary.LittleEndian.Uint64(data)), path: path, mapped: mapped}

	expected := cfg.TensorShapes()
	projections := projectionWeights(cfg)
	for _, name := range slices.Sorted(maps.Keys(meta.Tensors)) {
		tm := meta.Tensors[name]
		switch {
		case !projections[name]:
			return nil, fmt.Errorf("%s: metadata %q lists %q, which is not a projection weight of this model", path, CompressionMetadataKey, name)
		case !slices.Equal(tm.Shape, expected[name]):
			return nil, fmt.Errorf("%s: metadata %q: tensor %q has shape %v, but the configuration implies %v", path, CompressionMetadataKey, name, tm.Shape, expected[name])
		}
		if _, dense := f.Info(name); dense {
			return nil, fmt.Errorf("%s: tensor %q is stored both densely and compressed", path, name)
		}
	}
	if meta.CRC32C != nil {
		if err := file.verifyChecksums(meta.CRC32C); err != nil {
			return nil, err
		}
	}
	ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Compressed: map[string]kernels.Matrix[float32]{}, Source: path}
	for _, name := range slices.Sorted(maps.Keys(expected)) {
		shape := expected[name]
		if tm, ok := meta.Tensors[name]; ok {
			var m kernels.Matrix[float32]
			if nf4 {
				m, err = file.nf4Matrix(name, shape[0], shape[1], tm)
			} else {
				m, err = file.bitmapMatrix(name, shape[0], shape[1], tm.NNZ, valueDType)
			}
			if err != nil {
				return nil, err
			}
			ck.Compressed[name] = m
			continue
		}
		info, ok := f.Info(name)
		if !ok {
			return nil, fmt.Errorf("%s: missing tensor %q", path, name)
		}
		if !slices.Equal(info.Shape, shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, but the configuration implies %v", path, name, info.Shape, shape)
		}
		t := &Tensor{Shape: shape}
		if info.DType == safetensors.BF16 && len(shape) == 2 {
			t.BF16, err = f.BF16(name) // a view, as LoadHF keeps it
		} else {
			t.Data, err = f.Float32(name)
		}
		if err != nil {
			return nil, err
		}
		ck.Tensors[name] = t
	}
	if raw, ok := metadata[AdaptersMetadataKey]; ok {
		if ck.Adapters, err = file.adapters(raw, cfg); err != nil {
			return nil, err
		}
	}
	if raw, ok := metadata[PreparedMetadataKey]; ok {
		if ck.Prepared, err = file.prepared(raw, cfg); err != nil {
			return nil, err
		}
	}
	return ck, nil
}

// projectionWeights is the set of projection weight names of cfg.
func projectionWeights(cfg Config) map[string]bool {
	out := make(map[string]bool, cfg.Layers*int(NumProjections))
	for l := 0; l < cfg.Layers; l++ {
		for _, m := range cfg.LayerModules(l) {
			out[m+".weight"] = true
		}
	}
	return out
}

// compressedFile is a parsed compressed model.safetensors over its raw bytes
// (the memory map), which the bitmap arrays are views of.
type compressedFile struct {
	f         *safetensors.File
	raw       []byte // the whole file
	dataStart int    // offset of the data section in raw
	path      string
	mapped    bool // raw is a file mapping (see safetensors.MapFile), not memory of the heap
}

// bitmapMatrix builds the compressed weight name (rows × cols, nnz values of
// type dt) on views of the file, validated by bitmap.FromParts.
func (c compressedFile) bitmapMatrix(name string, rows, cols, nnz int, dt bitmap.DType) (*bitmap.Matrix, error) {
	if nnz < 0 || int64(nnz) > int64(rows)*int64(cols) {
		return nil, fmt.Errorf("%s: metadata %q: tensor %q has nnz %d, outside [0, %d]", c.path, CompressionMetadataKey, name, nnz, int64(rows)*int64(cols))
	}
	parts := bitmap.Parts{Rows: rows, Cols: cols, DType: dt}
	var err error
	if parts.Bitmap, err = view[uint16](c, name+BitmapSuffix, safetensors.U16, rows, bitmap.ChunksPerRow(cols)); err != nil {
		return nil, err
	}
	if parts.RowPtr, err = view[uint32](c, name+RowPtrSuffix, safetensors.U32, rows+1); err != nil {
		return nil, err
	}
	if dt == bitmap.F32 {
		parts.Values32, err = view[float32](c, name+ValuesSuffix, safetensors.F32, nnz)
	} else {
		parts.Values16, err = view[uint16](c, name+ValuesSuffix, valueDTypeOf(dt), nnz)
	}
	if err != nil {
		return nil, err
	}
	m, err := bitmap.FromParts(parts)
	if err != nil {
		return nil, fmt.Errorf("%s: compressed tensor %q: %v", c.path, name, err)
	}
	return m, nil
}

// nf4Matrix builds the NF4 weight name (rows × cols) that tm describes on
// views of the file, validated by bitmap.FromNF4Parts.
func (c compressedFile) nf4Matrix(name string, rows, cols int, tm compressedTensorMeta) (*bitmap.NF4, error) {
	n := tm.NNZ
	switch tm.Layout {
	case layoutDense:
		if int64(n) != int64(rows)*int64(cols) {
			return nil, fmt.Errorf("%s: metadata %q: dense NF4 tensor %q has nnz %d, want rows·cols = %d", c.path, CompressionMetadataKey, name, n, int64(rows)*int64(cols))
		}
	case layoutBitmap:
		if n < 0 || int64(n) > int64(rows)*int64(cols) {
			return nil, fmt.Errorf("%s: metadata %q: tensor %q has nnz %d, outside [0, %d]", c.path, CompressionMetadataKey, name, n, int64(rows)*int64(cols))
		}
	default:
		return nil, fmt.Errorf("%s: metadata %q: NF4 tensor %q has layout %q, want %q or %q", c.path, CompressionMetadataKey, name, tm.Layout, layoutBitmap, layoutDense)
	}
	p := bitmap.NF4Parts{Rows: rows, Cols: cols}
	var err error
	if tm.Layout == layoutBitmap {
		if p.Bitmap, err = view[uint16](c, name+BitmapSuffix, safetensors.U16, rows, bitmap.ChunksPerRow(cols)); err != nil {
			return nil, err
		}
		if p.RowPtr, err = view[uint32](c, name+RowPtrSuffix, safetensors.U32, rows+1); err != nil {
			return nil, err
		}
	}
	if p.Codes, err = view[uint8](c, name+NF4CodesSuffix, safetensors.U8, (n+1)/2); err != nil {
		return nil, err
	}
	blocks := (n + bitmap.NF4BlockSize - 1) / bitmap.NF4BlockSize
	if !tm.DoubleQuant {
		p.Absmax, err = view[float32](c, name+AbsmaxSuffix, safetensors.F32, blocks)
	} else {
		if p.QAbsmax, err = view[int8](c, name+AbsmaxQSuffix, safetensors.I8, blocks); err != nil {
			return nil, err
		}
		if p.Absmax2, err = view[float32](c, name+Absmax2Suffix, safetensors.F32, (blocks+bitmap.NF4ScaleBlock-1)/bitmap.NF4ScaleBlock); err != nil {
			return nil, err
		}
		var off []float32
		if off, err = view[float32](c, name+AbsmaxOffsetSuffix, safetensors.F32, 1); err == nil {
			p.Offset = off[0]
		}
	}
	if err != nil {
		return nil, err
	}
	m, err := bitmap.FromNF4Parts(p)
	if err != nil {
		return nil, fmt.Errorf("%s: compressed tensor %q: %v", c.path, name, err)
	}
	return m, nil
}

// adapters reads the adapters the salr_adapters metadata raw lists.
func (c compressedFile) adapters(raw string, cfg Config) (map[string]*LowRank[float32], error) {
	var meta adaptersMeta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v", c.path, AdaptersMetadataKey, err)
	}
	if meta.Version != adaptersVersion {
		return nil, fmt.Errorf("%s: metadata %q: version %d; this build reads version %d", c.path, AdaptersMetadataKey, meta.Version, adaptersVersion)
	}
	shapes := cfg.TensorShapes()
	projections := projectionWeights(cfg)
	out := make(map[string]*LowRank[float32], len(meta.Modules))
	for _, module := range slices.Sorted(maps.Keys(meta.Modules)) {
		r := meta.Modules[module].Rank
		if !projections[module+".weight"] {
			return nil, fmt.Errorf("%s: metadata %q lists %q, which is not a projection of this model", c.path, AdaptersMetadataKey, module)
		}
		if r <= 0 || r > 1<<20 {
			return nil, fmt.Errorf("%s: metadata %q: adapter of %s has rank %d", c.path, AdaptersMetadataKey, module, r)
		}
		out1, in := shapes[module+".weight"][0], shapes[module+".weight"][1]
		get := func(suffix string, shape ...int) ([]float32, error) {
			name := module + suffix
			info, ok := c.f.Info(name)
			if !ok {
				return nil, fmt.Errorf("%s: missing tensor %q", c.path, name)
			}
			if !slices.Equal(info.Shape, shape) {
				return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", c.path, name, info.Shape, shape)
			}
			v, err := c.f.Float32(name)
			return slices.Clone(v), err
		}
		a := &LowRank[float32]{R: r}
		var err error
		if a.A, err = get(AdapterASuffix, r, in); err != nil {
			return nil, err
		}
		if a.B, err = get(AdapterBSuffix, out1, r); err != nil {
			return nil, err
		}
		if a.Scale, err = get(AdapterScaleSuffix, r); err != nil {
			return nil, err
		}
		out[module] = a
	}
	return out, nil
}

// view returns tensor name of the file as a []T after checking its dtype and
// shape. The slice aliases the file when the host is little-endian and the
// data aligned, with its capacity running to the end of the file.
func view[T uint8 | int8 | uint16 | uint32 | float32](c compressedFile, name string, dtype safetensors.DType, shape ...int) ([]T, error) {
	info, ok := c.f.Info(name)
	if !ok {
		return nil, fmt.Errorf("%s: missing tensor %q", c.path, name)
	}
	if info.DType != dtype {
		return nil, fmt.Errorf("%s: tensor %q has dtype %s, want %s", c.path, name, info.DType, dtype)
	}
	if !slices.Equal(info.Shape, shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", c.path, name, info.Shape, shape)
	}
	return viewAs[T](c.raw, c.dataStart+int(info.Begin), c.dataStart+int(info.End)), nil
}

// littleEndianHost is true when in-memory integers have the file format's
// byte order.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// viewAs interprets raw[begin:end], little-endian elements of T, as a []T:
// without copying when the host is little-endian and the bytes are aligned
// for T, in which case the slice's capacity extends over the rest of raw;
// as a converted copy otherwise.
func viewAs[T uint8 | int8 | uint16 | uint32 | float32](raw []byte, begin, end int) []T {
	size := int(unsafe.Sizeof(T(0)))
	n := (end - begin) / size
	if littleEndianHost && begin < len(raw) && uintptr(unsafe.Pointer(&raw[begin]))%uintptr(size) == 0 {
		return unsafe.Slice((*T)(unsafe.Pointer(&raw[begin])), (len(raw)-begin)/size)[:n]
	}
	out := make([]T, n)
	for i := range out {
		at := raw[begin+i*size:]
		switch p := any(&out[i]).(type) {
		case *uint8:
			*p = at[0]
		case *int8:
			*p = int8(at[0])
		case *uint16:
			*p = binary.LittleEndian.Uint16(at)
		case *uint32:
			*p = binary.LittleEndian.Uint32(at)
		case *float32:
			*p = math.Float32frombits(binary.LittleEndian.Uint32(at))
		}
	}
	return out
}

// littleEndianBytes returns the little-endian bytes of s: a view of its
// memory on little-endian hosts (to be read only while s is alive), an
// encoded copy elsewhere.
func littleEndianBytes[T uint16 | uint32](s []T) []byte {
	size := int(unsafe.Sizeof(T(0)))
	if len(s) == 0 {
		return []byte{}
	}
	if littleEndianHost {
		return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*size)
	}
	out := make([]byte, len(s)*size)
	for i, v := range s {
		if size == 2 {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		}
	}
	return out
}
