package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ParseURL parses s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=true&profile=NAME&max_attempts=N]. Credentials
// are refused in the URL (it ends up in process lists, shell history and logs): they come from the AWS chain
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the shared files, an instance role).
func ParseURL(raw string) (Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Options{}, fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Options{}, fmt.Errorf("scheme %q is not s3", u.Scheme)
	}
	if u.User != nil {
		return Options{}, errors.New("credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use an AWS profile or role)")
	}
	if u.Host == "" {
		return Options{}, errors.New("no bucket: want s3://BUCKET/PREFIX")
	}
	o := Options{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			eu, err := url.Parse(v)
			if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
				return Options{}, fmt.Errorf("endpoint %q: want http://host:port or https://host", v)
			}
			if eu.User != nil {
				return Options{}, errors.New("credentials do not belong in the endpoint URL")
			}
			o.Endpoint = v
		case "region":
			o.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Options{}, fmt.Errorf("path_style %q: want true or false", v)
			}
			o.PathStyle = b
		case "profile":
			o.Profile = v
		case "max_attempts":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100 {
				return Options{}, fmt.Errorf("max_attempts %q: want the number of tries of each request, 1 to 100", v)
			}
			o.MaxAttempts = n
		default:
			return Options{}, fmt.Errorf("unknown parameter %q: use endpoint, region, path_style, profile or max_attempts", k)
		}
	}
	return o, nil
}

// URL formats o back as s3://BUCKET/PREFIX?..., never with credentials.
func (o Options) URL() string {
	s := "s3://" + o.Bucket + "/" + o.Prefix
	var q []string
	if o.Endpoint != "" {
		q = append(q, "endpoint="+o.Endpoint)
	}
	if o.Region != "" {
		q = append(q, "region="+url.QueryEscape(o.Region))
	}
	if o.PathStyle {
		q = append(q, "path_style=true")
	}
	if o.Profile != "" {
		q = append(q, "profile="+url.QueryEscape(o.Profile))
	}
	if o.MaxAttempts > 0 {
		q = append(q, "max_attempts="+strconv.Itoa(o.MaxAttempts))
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}
