package planner

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/anthropic"
	"github.com/tmc/langchaingo/llms/openai"
)

// Providers of models.
const (
	// ProviderOpenAI is any OpenAI-compatible chat completions endpoint:
	// OpenAI, vLLM, LM Studio, and Ollama through its /v1 endpoint
	// (langchaingo's native Ollama client ignores tools).
	ProviderOpenAI = "openai"
	// ProviderAnthropic is Anthropic's messages API.
	ProviderAnthropic = "anthropic"
)

// Environment variables a Config is read from when a field is empty.
const (
	EnvProvider = "TEND_LLM_PROVIDER"
	EnvBaseURL  = "TEND_LLM_BASE_URL"
	EnvModel    = "TEND_LLM_MODEL"
	EnvKey      = "TEND_LLM_API_KEY"
	EnvKeyFile  = "TEND_LLM_API_KEY_FILE"
)

// ErrNoKey means a provider that needs an API key was given none.
var ErrNoKey = errors.New("planner: no API key")

// Config selects a model. The key is never a flag: it comes from the
// environment or a mounted file, and String never shows it.
type Config struct {
	Provider string
	BaseURL  string
	Model    string
	// KeyFile holds the API key (a mounted Secret, say).
	KeyFile string
	// HTTPClient, if set, makes the requests.
	HTTPClient *http.Client

	key string
}

// String describes the configuration without its key.
func (c Config) String() string {
	return fmt.Sprintf("%s model %q at %s", c.Provider, c.Model, c.BaseURL)
}

// GoString is String: not even %#v shows the key.
func (c Config) GoString() string { return c.String() }

// Resolve fills what is empty from the environment and reads the key: from
// KeyFile, else $TEND_LLM_API_KEY_FILE, else $TEND_LLM_API_KEY.
func (c *Config) Resolve() error {
	env := func(v *string, name string) {
		if *v == "" {
			*v = os.Getenv(name)
		}
	}
	env(&c.Provider, EnvProvider)
	env(&c.BaseURL, EnvBaseURL)
	env(&c.Model, EnvModel)
	env(&c.KeyFile, EnvKeyFile)
	if c.Provider == "" {
		c.Provider = ProviderOpenAI
	}
	if c.Provider != ProviderOpenAI && c.Provider != ProviderAnthropic {
		return fmt.Errorf("planner: provider %q: must be %s or %s", c.Provider, ProviderOpenAI, ProviderAnthropic)
	}
	if c.Model == "" {
		return errors.New("planner: no model named")
	}
	if c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return fmt.Errorf("failed to read the API key file: %w", err)
		}
		c.key = strings.TrimSpace(string(b))
	} else {
		c.key = os.Getenv(EnvKey)
	}
	if c.key == "" {
		if c.Provider == ProviderAnthropic {
			return ErrNoKey
		}
		// Local OpenAI-compatible servers (vLLM, LM Studio, Ollama) take
		// any key; the client wants one.
		c.key = "none"
	}
	return nil
}

// NewModel returns the langchaingo client of a resolved Config.
func NewModel(c Config) (llms.Model, error) {
	switch c.Provider {
	case ProviderOpenAI:
		opts := []openai.Option{openai.WithModel(c.Model), openai.WithToken(c.key)}
		if c.BaseURL != "" {
			opts = append(opts, openai.WithBaseURL(c.BaseURL))
		}
		if c.HTTPClient != nil {
			opts = append(opts, openai.WithHTTPClient(c.HTTPClient))
		}
		m, err := openai.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("failed to create the OpenAI-compatible client: %w", err)
		}
		return m, nil
	case ProviderAnthropic:
		opts := []anthropic.Option{anthropic.WithModel(c.Model), anthropic.WithToken(c.key)}
		if c.BaseURL != "" {
			opts = append(opts, anthropic.WithBaseURL(c.BaseURL))
		}
		if c.HTTPClient != nil {
			opts = append(opts, anthropic.WithHTTPClient(c.HTTPClient))
		}
		m, err := anthropic.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("failed to create the Anthropic client: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("planner: provider %q: must be %s or %s", c.Provider, ProviderOpenAI, ProviderAnthropic)
}
