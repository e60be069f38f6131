package main

import (
	"context"
	"errors"
)

func prepareMySQL(ctx context.Context, repo, dir string) (*suite, error) {
	return nil, errors.New("not yet")
}
