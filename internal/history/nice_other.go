//go:build !linux

package history

func backgroundThread() func() { return func() {} }
