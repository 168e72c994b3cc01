// Package mlog stands in for monis.app/mlog v0.0.4, the logging library of azure-workload-identity,
// which the module proxy reachable from this workplace does not serve (its host is not on the proxy's
// allowlist). It is written here from mlog's documented API, not copied from it.
//
// Only one behaviour of mlog reaches the webhook's output: which level `Enabled` reports, because
// upstream's currentLogLevel() turns it into the injected proxy's `--log-level=` argument. That part
// follows mlog exactly: the levels are "" (warning, mlog's LevelWarning), info, debug, trace and all,
// each enabling the ones below it; any other name is refused by ValidateAndSetLogLevelAndFormatGlobally.
// Everything else is a plain JSON-lines logger on stderr.
package mlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/go-logr/logr"
)

// LogLevel is mlog's verbosity: "" (warning), info, debug, trace, all.
type LogLevel string

const (
	LevelWarning LogLevel = ""
	LevelInfo    LogLevel = "info"
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

// LogFormat is mlog's output format.
type LogFormat string

const (
	FormatJSON LogFormat = "json"
	FormatText LogFormat = "text"
	FormatCLI  LogFormat = "cli"
)

// LogSpec is what ValidateAndSetLogLevelAndFormatGlobally takes.
type LogSpec struct {
	Level  LogLevel  `json:"level,omitempty"`
	Format LogFormat `json:"format,omitempty"`
}

// rank is mlog's klog verbosity for a level (warning 0, info 2, debug 4, trace 6, all 108); -1 unknown.
func rank(l LogLevel) int {
	switch l {
	case LevelWarning:
		return 0
	case LevelInfo:
		return 2
	case LevelDebug:
		return 4
	case LevelTrace:
		return 6
	case LevelAll:
		return 108
	default:
		return -1
	}
}

var (
	mu      sync.Mutex
	current = 0 // mlog starts at warning
)

// ValidateAndSetLogLevelAndFormatGlobally sets the global level (the format only changes nothing here).
func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	r := rank(spec.Level)
	if r < 0 {
		return errors.New("invalid log level, valid choices are the empty string, info, debug, trace and all")
	}
	switch spec.Format {
	case "", FormatJSON, FormatText, FormatCLI:
	default:
		return errors.New("invalid log format, valid choices are the empty string, json and text")
	}
	mu.Lock()
	current = r
	mu.Unlock()
	return nil
}

// Enabled reports whether statements at this level are printed.
func Enabled(level LogLevel) bool {
	r := rank(level)
	mu.Lock()
	defer mu.Unlock()
	return r >= 0 && r <= current
}

// Logger is mlog's structured logger.
type Logger interface {
	Error(msg string, err error, keysAndValues ...any)
	Warning(msg string, keysAndValues ...any)
	WarningErr(msg string, err error, keysAndValues ...any)
	Info(msg string, keysAndValues ...any)
	InfoErr(msg string, err error, keysAndValues ...any)
	Debug(msg string, keysAndValues ...any)
	DebugErr(msg string, err error, keysAndValues ...any)
	Trace(msg string, keysAndValues ...any)
	TraceErr(msg string, err error, keysAndValues ...any)
	All(msg string, keysAndValues ...any)
	Always(msg string, keysAndValues ...any)
	WithValues(keysAndValues ...any) Logger
	WithName(name string) Logger
}

type logger struct {
	name string
	kv   []any
}

// New returns the root logger.
func New() Logger { return logger{} }

func (l logger) emit(level LogLevel, levelName, msg string, err error, kv []any) {
	if level != "always" && !Enabled(level) {
		return
	}
	rec := map[string]any{"level": levelName, "msg": msg}
	if l.name != "" {
		rec["logger"] = l.name
	}
	if err != nil {
		rec["error"] = err.Error()
	}
	all := append(append([]any{}, l.kv...), kv...)
	for i := 0; i+1 < len(all); i += 2 {
		rec[fmt.Sprint(all[i])] = fmt.Sprint(all[i+1])
	}
	b, _ := json.Marshal(rec)
	mu.Lock()
	defer mu.Unlock()
	_, _ = os.Stderr.Write(append(b, '\n'))
}

func (l logger) Error(msg string, err error, kv ...any) { l.emit(LevelWarning, "error", msg, err, kv) }
func (l logger) Warning(msg string, kv ...any)          { l.emit(LevelWarning, "warning", msg, nil, kv) }
func (l logger) WarningErr(msg string, err error, kv ...any) {
	l.emit(LevelWarning, "warning", msg, err, kv)
}
func (l logger) Info(msg string, kv ...any)               { l.emit(LevelInfo, "info", msg, nil, kv) }
func (l logger) InfoErr(msg string, err error, kv ...any) { l.emit(LevelInfo, "info", msg, err, kv) }
func (l logger) Debug(msg string, kv ...any)              { l.emit(LevelDebug, "debug", msg, nil, kv) }
func (l logger) DebugErr(msg string, err error, kv ...any) {
	l.emit(LevelDebug, "debug", msg, err, kv)
}
func (l logger) Trace(msg string, kv ...any) { l.emit(LevelTrace, "trace", msg, nil, kv) }
func (l logger) TraceErr(msg string, err error, kv ...any) {
	l.emit(LevelTrace, "trace", msg, err, kv)
}
func (l logger) All(msg string, kv ...any)    { l.emit(LevelAll, "all", msg, nil, kv) }
func (l logger) Always(msg string, kv ...any) { l.emit("always", "info", msg, nil, kv) }
func (l logger) WithValues(kv ...any) Logger {
	return logger{name: l.name, kv: append(append([]any{}, l.kv...), kv...)}
}
func (l logger) WithName(name string) Logger {
	if l.name != "" {
		name = strings.Join([]string{l.name, name}, ".")
	}
	return logger{name: name, kv: l.kv}
}

var root = logger{}

func Error(msg string, err error, kv ...any)      { root.Error(msg, err, kv...) }
func Warning(msg string, kv ...any)               { root.Warning(msg, kv...) }
func WarningErr(msg string, err error, kv ...any) { root.WarningErr(msg, err, kv...) }
func Info(msg string, kv ...any)                  { root.Info(msg, kv...) }
func InfoErr(msg string, err error, kv ...any)    { root.InfoErr(msg, err, kv...) }
func Debug(msg string, kv ...any)                 { root.Debug(msg, kv...) }
func DebugErr(msg string, err error, kv ...any)   { root.DebugErr(msg, err, kv...) }
func Trace(msg string, kv ...any)                 { root.Trace(msg, kv...) }
func TraceErr(msg string, err error, kv ...any)   { root.TraceErr(msg, err, kv...) }
func All(msg string, kv ...any)                   { root.All(msg, kv...) }
func Always(msg string, kv ...any)                { root.Always(msg, kv...) }
func WithValues(kv ...any) Logger                 { return root.WithValues(kv...) }
func WithName(name string) Logger                 { return root.WithName(name) }

// Fatal logs and exits 1.
func Fatal(err error, kv ...any) {
	root.emit("always", "fatal", "unrecoverable error encountered", err, kv)
	os.Exit(1)
}

// Setup returns the flush function (nothing is buffered here).
func Setup() func() { return func() {} }

// Logr adapts the logger to logr (controller-runtime's SetLogger).
func Logr() logr.Logger { return logr.New(sink{}) }

type sink struct{ l logger }

func (s sink) Init(logr.RuntimeInfo)  {}
func (s sink) Enabled(level int) bool { mu.Lock(); defer mu.Unlock(); return level <= current }
func (s sink) Info(_ int, msg string, kv ...any) {
	s.l.emit(LevelWarning, "info", msg, nil, kv)
}
func (s sink) Error(err error, msg string, kv ...any) { s.l.Error(msg, err, kv...) }
func (s sink) WithValues(kv ...any) logr.LogSink {
	return sink{l: s.l.WithValues(kv...).(logger)}
}
func (s sink) WithName(name string) logr.LogSink { return sink{l: s.l.WithName(name).(logger)} }
