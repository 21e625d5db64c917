package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/trainer"
)

func init() {
	register(subcommand{
		name:    "checkpoint",
		summary: "write a random-weight HF model directory of a named shape (sharded safetensors with an index)",
		run:     runCheckpoint,
	})
}

func runCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o trainer.RandomCheckpointOptions
	var dtype, shardSize string
	fs := newFlagSet("checkpoint")
	fs.StringVar(&o.Shape, "shape", "", "model `shape` (required): "+model.ShapeNames)
	fs.StringVar(&o.Out, "out", "", "output `directory` (required); built beside it under a temporary name and renamed when complete")
	fs.StringVar(&dtype, "dtype", "bf16", "weight dtype: bf16, fp16 or fp32")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed (the weights are model.RandomTensor's for it)")
	fs.StringVar(&shardSize, "max-shard-size", "5GB", "largest tensor data per safetensors file, as transformers' max_shard_size (5GB = 5e9 bytes, GiB for 2^30)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer `path` to add: a llama2.c tok*.bin (written as tokenizer.json) or an HF tokenizer.json (copied); without it the directory has none")
	fs.IntVar(&o.Vocab, "vocab", 0, "vocabulary size (0: the shape's); at least the tokenizer's")
	fs.BoolVar(&o.Overwrite, "overwrite", false, "replace an existing -out directory")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case o.Shape == "":
		return cli.UsageError("-shape is required (" + model.ShapeNames + ")")
	case o.Out == "":
		return cli.UsageError("-out is required")
	}
	var err error
	if o.DType, err = safetensors.ParseDType(dtype); err != nil || !o.DType.IsFloat() || o.DType == safetensors.F64 {
		return cli.UsageError(fmt.Sprintf("-dtype %q: want bf16, fp16 or fp32", dtype))
	}
	if o.MaxShardSize, err = safetensors.ParseSize(shardSize); err != nil {
		return cli.UsageError("-max-shard-size: " + err.Error())
	}
	start := time.Now()
	res, err := trainer.WriteRandomCheckpoint(ctx, o, stderr)
	if err != nil {
		return err
	}
	seconds := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "wrote %s: %s (%d layers, hidden %d, vocabulary %d), %s, seed %d: %s\n", o.Out, o.Shape,
		res.Config.Layers, res.Config.Hidden, res.Config.Vocab, strings.ToLower(string(o.DType)), o.Seed, filesSummary(res.WeightFiles))
	fmt.Fprintf(stdout, "%d bytes (%.2f GB) in %.1f s (%.0f MB/s)\n", res.Bytes, float64(res.Bytes)/1e9, seconds, float64(res.Bytes)/1e6/seconds)
	if !res.Tokenizer {
		fmt.Fprintln(stdout, "no tokenizer in the directory (no -tokenizer): to train on it, set model.tokenizer")
	}
	return nil
}

// filesSummary names the weight files: the single file, or the shard count
// and the index.
func filesSummary(files []string) string {
	if len(files) == 1 {
		return files[0]
	}
	return fmt.Sprintf("%d shards and %s", len(files), safetensors.IndexFileName)
}
