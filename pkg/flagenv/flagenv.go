// Package flagenv lets environment variables override flags: every flag
// --some-name not given on the command line takes PREFIX_SOME_NAME from
// the environment when set, so services configure the same way from a
// shell, a unit file or a container.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName returns the variable that overrides flag name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Apply sets every flag of fs that was not set explicitly from its
// environment variable, if present. Call it after fs.Parse.
func Apply(fs *flag.FlagSet, prefix string) error {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if explicit[f.Name] || err != nil {
			return
		}
		env := EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// Usage appends the environment variable names to fs's usage output.
func Usage(fs *flag.FlagSet, prefix string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEvery flag can also be set in the environment: --foo-bar as %s.\n", EnvName(prefix, "foo-bar"))
	}
}
