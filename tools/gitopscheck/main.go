// gitopscheck judges a Kubernetes object the way two GitOps tools do, with their own code, so
// the tests can hold ModelSync's conditions and deploy/argocd/health.lua against them:
//
//	gitopscheck health SCRIPT < object.json   Argo CD: the resource health a health.lua override gives
//	gitopscheck kstatus < object.json         Flux, kubectl-style waits: sigs.k8s.io/cli-utils kstatus
//
// Each prints one JSON object {"status": ..., "message": ...} and exits 0; an error of the script
// (as Argo CD would show it: Unknown) is in "error" with status "Unknown".
//
// health mirrors Argo CD's util/lua (VM.runLua, ExecuteHealthLua) and gitops-engine's
// health.GetResourceHealth for an override from argocd-cm without useOpenLibs: gopher-lua with
// SkipOpenLibs, then only the package, base and table libraries and Argo CD's safe os subset
// (time, date) opened, the object decoded from unstructured JSON into the global `obj`, a
// one-second deadline, and an object being deleted reported as Progressing "Pending deletion"
// before any script runs. No string, math, io or os library beyond that subset is there.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

// Argo CD's health status codes (gitops-engine pkg/health).
var healthCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gitopscheck health SCRIPT < object.json | gitopscheck kstatus < object.json")
		os.Exit(2)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail(fmt.Errorf("the object: %w", err))
	}
	var out verdict
	switch os.Args[1] {
	case "health":
		if len(os.Args) != 3 {
			fail(fmt.Errorf("health needs the script's path"))
		}
		script, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err)
		}
		out = health(obj, string(script))
	case "kstatus":
		res, err := status.Compute(obj)
		if err != nil {
			out = verdict{Status: "Unknown", Error: err.Error()}
		} else {
			out = verdict{Status: res.Status.String(), Message: res.Message}
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gitopscheck:", err)
	os.Exit(2)
}

// health is gitops-engine's GetResourceHealth with a Lua override, run as Argo CD runs it.
func health(obj *unstructured.Unstructured, script string) verdict {
	if obj.GetDeletionTimestamp() != nil {
		return verdict{Status: "Progressing", Message: "Pending deletion"}
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return verdict{Status: "Unknown", Error: err.Error()}
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return verdict{Status: "Unknown", Error: err.Error()}
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return verdict{Status: "Unknown", Error: fmt.Sprintf("expect table output from Lua script, not %s", ret.Type())}
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return verdict{Status: "Unknown", Error: err.Error()}
	}
	var hs verdict
	if err := json.Unmarshal(encoded, &hs); err != nil {
		return verdict{Status: "Unknown", Error: err.Error()}
	}
	if !healthCodes[hs.Status] {
		return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return hs
}

// Argo CD registers its safe os functions (time, date) with RegisterModule under the table
// library's name; the script gets no `os` global unless it requires "os". Both are reproduced;
// the functions themselves are not what is tested here, so they are stubs of the same names.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
	"date": func(l *lua.LState) int { l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339))); return 1 },
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOs))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOs))
	return 1
}

// decodeValue is Argo CD's conversion of the unstructured object into Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
