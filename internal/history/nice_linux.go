//go:build linux

package history

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// backgroundThread pins the calling goroutine to its own OS thread and gives
// that thread the lowest CPU priority, so that the kernel runs request
// handling first when both want a core: an embedded database's commit is
// CPU work (pure-Go SQLite) that would otherwise compete on equal terms with
// submissions on a small machine. The returned function undoes the pinning.
func backgroundThread() func() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
		return runtime.UnlockOSThread
	}
	return func() {
		if err == nil {
			// Getpriority returns 20-nice on Linux.
			_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old)
		}
		runtime.UnlockOSThread()
	}
}
