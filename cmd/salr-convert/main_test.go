package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/sparsity"
)

// convertTestAssets returns the stories260K directory of the shared assets
// (assets.ForTest), skipping when they are absent.
func convertTestAssets(t *testing.T) string {
	t.Helper()
	return filepath.Join(assets.ForTest(t), "stories260K")
}

func TestParseArgs(t *testing.T) {
	got, err := parseArgs([]string{"-in", "m.bin", "-tokenizer", "t.bin", "-out", "d", "-dtype", "bf16", "-overwrite"}, io.Discard, io.Discard)
	want := options{from: "llama2c", in: "m.bin", tokenizer: "t.bin", out: "d", dtype: safetensors.BF16, overwrite: true, sparsity: 0.5}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseArgs = %+v, %v", got, err)
	}
	// -force is the old spelling of -overwrite, with a note.
	var stderr bytes.Buffer
	if got, err := parseArgs([]string{"-in", "m.bin", "-tokenizer", "t.bin", "-out", "d", "-dtype", "bf16", "-force"}, io.Discard, &stderr); err != nil || !reflect.DeepEqual(got, want) ||
		stderr.String() != "salr-convert: note: -force is deprecated; use -overwrite\n" {
		t.Errorf("-force: %+v, %v, stderr %q", got, err, stderr.String())
	}
	// fp32, bf16, fp16, and the old spellings.
	for spelling, d := range map[string]safetensors.DType{"fp32": safetensors.F32, "f32": safetensors.F32, "float32": safetensors.F32,
		"fp16": safetensors.F16, "f16": safetensors.F16, "float16": safetensors.F16, "bf16": safetensors.BF16, "bfloat16": safetensors.BF16} {
		if got, err := parseArgs([]string{"-in", "m.bin", "-out", "d", "-dtype", spelling}, io.Discard, io.Discard); err != nil || got.dtype != d {
			t.Errorf("-dtype %s: %v, %v; want %v", spelling, got.dtype, err, d)
		}
	}
	if got, err := parseArgs([]string{"-in", "m.bin", "-out", "d"}, io.Discard, io.Discard); err != nil || got.dtype != safetensors.F32 || got.overwrite {
		t.Errorf("defaults: %+v, %v", got, err)
	}
	for spelling, d := range map[string]model.BaseFormat{"fp32": model.BaseBitmapFP32, "f32": model.BaseBitmapFP32, "fp16": model.BaseBitmapFP16,
		"f16": model.BaseBitmapFP16, "bf16": model.BaseBitmapBF16, "nf4": model.BaseBitmapNF4, "NF4": model.BaseBitmapNF4} {
		if got, err := parseArgs([]string{"-compress", "-in", "m.bin", "-out", "d", "-compress-dtype", spelling}, io.Discard, io.Discard); err != nil || got.compressFormat != d {
			t.Errorf("-compress-dtype %s: %v, %v; want %v", spelling, got.compressFormat, err, d)
		}
	}
	var help bytes.Buffer
	if _, err := parseArgs([]string{"-h"}, &help, io.Discard); !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(help.String(), "usage: salr-convert ") ||
		!strings.Contains(help.String(), "-dtype fp32|bf16|fp16") || !strings.Contains(help.String(), "(default \"fp32\")") || !strings.Contains(help.String(), "(required)") {
		t.Errorf("-h: %v\n%s", err, help.String())
	}
	for _, args := range [][]string{
		{"-out", "d"},
		{"-in", "m.bin"},
		{"-in", "m.bin", "-out", "d", "-dtype", "i8"},
		{"-in", "m.bin", "-out", "d", "-from", "gguf"},
		{"-in", "m.bin", "-out", "d", "extra"},
		{"-bogus"},
	} {
		_, err := parseArgs(args, io.Discard, io.Discard)
		if !cli.IsUsage(err) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := parseArgs([]string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v", err)
	}
}

func TestRunConvertsStories260K(t *testing.T) {
	assets := convertTestAssets(t)
	out := filepath.Join(t.TempDir(), "hf")
	opts := options{from: "llama2c", in: filepath.Join(assets, "stories260K.bin"), tokenizer: filepath.Join(assets, "tok512.bin"), out: out, dtype: safetensors.BF16}
	var stdout bytes.Buffer
	if err := run(opts, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "5 layers") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("missing %s", name)
		}
	}
	ck, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if c := ck.Config; c.Vocab != 512 || c.TorchDtype != "bfloat16" || c.BOSTokenID != 1 || !reflect.DeepEqual(c.EOSTokenIDs, []int{2}) {
		t.Errorf("config %+v", c)
	}
	tok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatalf("converted tokenizer does not load: %v", err)
	}
	if ids, err := tok.Encode("Once upon a time"); err != nil || !reflect.DeepEqual(ids, []int{403, 407, 261, 378}) {
		t.Errorf("converted tokenizer encodes %v, %v", ids, err)
	}
	// A second conversion into the same directory needs -overwrite.
	if err := run(opts, io.Discard); err == nil || !strings.Contains(err.Error(), "already holds a model") {
		t.Errorf("second run: err = %v", err)
	}
	opts.overwrite = true
	if err := run(opts, io.Discard); err != nil {
		t.Errorf("forced run: %v", err)
	}
}

func TestRunRejectsMismatchedTokenizer(t *testing.T) {
	assets := convertTestAssets(t)
	// A vocabulary of 3 tokens cannot belong to a 512-token model.
	tok := filepath.Join(t.TempDir(), "tok3.bin")
	var buf bytes.Buffer
	buf.Write([]byte{5, 0, 0, 0})
	for _, piece := range []string{"<unk>", "\n<s>\n", "\n</s>\n"} {
		buf.Write([]byte{0, 0, 0, 0})
		buf.Write([]byte{byte(len(piece)), 0, 0, 0})
		buf.WriteString(piece)
	}
	os.WriteFile(tok, buf.Bytes(), 0o644)
	opts := options{from: "llama2c", in: filepath.Join(assets, "stories260K.bin"), tokenizer: tok, out: t.TempDir(), dtype: safetensors.F32}
	err := run(opts, io.Discard)
	if err == nil {
		t.Fatal("accepted a 3-token tokenizer for a 512-token model")
	}
	if entries, _ := os.ReadDir(opts.out); len(entries) != 0 {
		t.Errorf("failed run wrote %d files", len(entries))
	}
}

func TestParseArgsCompress(t *testing.T) {
	got, err := parseArgs([]string{"-compress", "-sparsity", "0.6", "-compress-dtype", "fp16", "-from", "hf", "-in", "src", "-out", "d"}, io.Discard, io.Discard)
	want := options{from: "hf", in: "src", out: "d", dtype: safetensors.F16, compress: true, sparsity: 0.6, compressFormat: model.BaseBitmapFP16}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseArgs = %+v, %v", got, err)
	}
	if got, err := parseArgs([]string{"-compress", "-in", "m.bin", "-out", "d"}, io.Discard, io.Discard); err != nil || got.compressFormat != model.BaseBitmapBF16 || got.dtype != safetensors.BF16 || got.sparsity != 0.5 {
		t.Errorf("defaults: %+v, %v", got, err)
	}
	for _, args := range [][]string{
		{"-compress", "-in", "m.bin", "-out", "d", "-dtype", "f32"},
		{"-in", "m.bin", "-out", "d", "-sparsity", "0.5"},
		{"-in", "m.bin", "-out", "d", "-compress-dtype", "bf16"},
		{"-compress", "-in", "m.bin", "-out", "d", "-sparsity", "1"},
		{"-compress", "-in", "m.bin", "-out", "d", "-sparsity", "0"},
		{"-compress", "-in", "m.bin", "-out", "d", "-compress-dtype", "int8"},
	} {
		if _, err := parseArgs(args, io.Discard, io.Discard); !cli.IsUsage(err) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

// prunedBases loads a checkpoint, prunes every projection by magnitude at
// 50% per matrix and encodes it in bf16, by tensor name.
func prunedBases(t *testing.T, ck *model.Checkpoint) map[string]*bitmap.Matrix {
	t.Helper()
	spec, err := sparsity.ParseSpec("magnitude", "matrix", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*bitmap.Matrix{}
	for l := 0; l < ck.Config.Layers; l++ {
		for p := model.Projection(0); p < model.NumProjections; p++ {
			name := model.ModuleName(l, p) + ".weight"
			w := ck.Tensors[name]
			data := slices.Clone(w.Data)
			mask, err := spec.Mask(data, w.Shape[0], w.Shape[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			mask.Apply(data)
			if out[name], err = bitmap.Encode(data, w.Shape[0], w.Shape[1], bitmap.BF16); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// sameBitmap reports whether two compressed matrices hold identical arrays.
func sameBitmap(a, b *bitmap.Matrix) bool {
	pa, pb := a.Parts(), b.Parts()
	return pa.Rows == pb.Rows && pa.Cols == pb.Cols && pa.DType == pb.DType && slices.Equal(pa.Bitmap, pb.Bitmap) &&
		slices.Equal(pa.RowPtr, pb.RowPtr) && slices.Equal(pa.Values16, pb.Values16) && slices.Equal(pa.Values32, pb.Values32)
}

func TestRunCompressesStories260K(t *testing.T) {
	assets := convertTestAssets(t)
	bin := filepath.Join(assets, "stories260K.bin")
	src, err := model.LoadLlama2C(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := prunedBases(t, src)

	checkCompressed := func(dir string) {
		t.Helper()
		l, err := model.Open(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for _, L := range l.Params.Layers {
			for _, lin := range L.Proj {
				bm, ok := lin.Base.(*bitmap.Matrix)
				if !ok {
					t.Fatalf("%s loaded as %T", lin.Module, lin.Base)
				}
				if !sameBitmap(bm, want[lin.Module+".weight"]) {
					t.Fatalf("%s: loaded base differs from Encode(pruned W)", lin.Module)
				}
				if n := bm.Rows() * bm.Cols(); bm.NNZ() != n-n/2 {
					t.Errorf("%s: %d of %d weights kept", lin.Module, bm.NNZ(), n)
				}
			}
		}
		// The compressed model generates text (not the dense model's
		// reference continuation: half of every projection is gone).
		texts, err := model.GenerateText(model.NewRunner(l.Params), l.Tokenizer, []string{"Once upon a time"},
			model.TextOptions{MaxNewTokens: 24, Sampler: mustGreedy(t)})
		if err != nil {
			t.Fatal(err)
		}
		if len(strings.TrimSpace(texts[0])) == 0 {
			t.Error("the compressed model generated nothing")
		}
		t.Logf("%s: Once upon a time%s", filepath.Base(dir), texts[0])
	}

	root := t.TempDir()
	fromBin := filepath.Join(root, "from-llama2c")
	var stdout bytes.Buffer
	opts := options{from: "llama2c", in: bin, tokenizer: filepath.Join(assets, "tok512.bin"), out: fromBin,
		dtype: safetensors.BF16, compress: true, sparsity: 0.5, compressFormat: model.BaseBitmapBF16}
	if err := run(opts, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "compressed 35 projections: sparsity 0.5000") {
		t.Errorf("stdout %q", stdout.String())
	}
	if !model.IsCompressedDir(fromBin) {
		t.Fatal("the output is not a compressed model directory")
	}
	checkCompressed(fromBin)

	// The same model through an HF directory compresses identically, and the
	// tokenizer files travel along.
	hf := filepath.Join(root, "hf")
	if err := run(options{from: "llama2c", in: bin, tokenizer: opts.tokenizer, out: hf, dtype: safetensors.F32}, io.Discard); err != nil {
		t.Fatal(err)
	}
	fromHF := filepath.Join(root, "from-hf")
	if err := run(options{from: "hf", in: hf, out: fromHF, dtype: safetensors.BF16, compress: true, sparsity: 0.5, compressFormat: model.BaseBitmapBF16}, io.Discard); err != nil {
		t.Fatal(err)
	}
	checkCompressed(fromHF)

	// Converting a compressed directory without -compress writes it densely.
	dense := filepath.Join(root, "dense")
	if err := run(options{from: "hf", in: fromHF, out: dense, dtype: safetensors.F32}, io.Discard); err != nil {
		t.Fatal(err)
	}
	ck, err := model.Load(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for name, m := range want {
		dec := make([]float32, m.Rows()*m.Cols())
		m.Decode(dec)
		if !slices.Equal(ck.Tensors[name].Float32(), dec) {
			t.Fatalf("%s: decompressed weights differ", name)
		}
	}
	// A compressed model cannot be pruned again.
	if err := run(options{from: "hf", in: fromHF, out: filepath.Join(root, "again"), dtype: safetensors.BF16, compress: true, sparsity: 0.5, compressFormat: model.BaseBitmapBF16}, io.Discard); err == nil || !strings.Contains(err.Error(), "bitmap-bf16") {
		t.Errorf("compressing twice: %v", err)
	}
}

func mustGreedy(t *testing.T) *model.Sampler {
	s, err := model.NewSampler(0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRunCompressesStories260KToNF4: -compress-dtype nf4 writes bitmap-nf4
// projections (the magnitude-pruned weights' kept values in NF4, scales
// double-quantized) and bf16 dense tensors, at under 0.23× the projections'
// dense bf16 bytes (0.19× at wide shapes; the row pointers of rows 64 or 172
// wide add about 0.02×); the directory loads as NF4 bases and generates.
func TestRunCompressesStories260KToNF4(t *testing.T) {
	assets := convertTestAssets(t)
	bin := filepath.Join(assets, "stories260K.bin")
	src, err := model.LoadLlama2C(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	spec, err := sparsity.ParseSpec("magnitude", "matrix", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "nf4")
	var stdout bytes.Buffer
	opts, err := parseArgs([]string{"-compress", "-compress-dtype", "nf4", "-in", bin, "-tokenizer", filepath.Join(assets, "tok512.bin"), "-out", out}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts.dtype != safetensors.BF16 {
		t.Errorf("dense tensors beside NF4 values: %v, want BF16", opts.dtype)
	}
	if err := run(opts, &stdout); err != nil {
		t.Fatal(err)
	}
	var ratio float64
	if i := strings.Index(stdout.String(), "dense bf16 ("); i < 0 {
		t.Fatalf("stdout %q", stdout.String())
	} else if _, err := fmt.Sscanf(stdout.String()[i:], "dense bf16 (%fx)", &ratio); err != nil || ratio > 0.23 {
		t.Errorf("stdout %q: ratio %v (%v), want <= 0.23", stdout.String(), ratio, err)
	}
	l, err := model.Open(out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, L := range l.Params.Layers {
		for _, lin := range L.Proj {
			m, ok := lin.Base.(*bitmap.NF4)
			if !ok || m.Dense() || !m.DoubleQuant() {
				t.Fatalf("%s loaded as %s", lin.Module, model.BaseFormatName(lin.Base))
			}
			w := src.Tensors[lin.Module+".weight"]
			kept := slices.Clone(w.Data)
			mask, err := spec.Mask(kept, w.Shape[0], w.Shape[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			mask.Apply(kept)
			enc, err := bitmap.EncodeNF4(kept, w.Shape[0], w.Shape[1], false, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(model.DecodeBase(m), model.DecodeBase(enc)) {
				t.Fatalf("%s: loaded base differs from EncodeNF4(pruned W)", lin.Module)
			}
		}
	}
	texts, err := model.GenerateText(model.NewRunner(l.Params), l.Tokenizer, []string{"Once upon a time"},
		model.TextOptions{MaxNewTokens: 24, Sampler: mustGreedy(t)})
	if err != nil || len(strings.TrimSpace(texts[0])) == 0 {
		t.Fatalf("the NF4 model generated nothing: %v", err)
	}
	t.Logf("nf4: Once upon a time%s", texts[0])
}
