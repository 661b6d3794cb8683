package xds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// renderKeys names each resource type in Render's output.
var renderKeys = map[string]string{
	resource.ListenerType: "listeners",
	resource.RouteType:    "routes",
	resource.ClusterType:  "clusters",
	resource.EndpointType: "endpoints",
}

// Render writes the nodes' resources for review, as "yaml" (one document
// per node) or "json" (an array of nodes). Each node shows its id, its
// version and its resources by type, each resource in Envoy's JSON form
// with snake_case field names and @type on every packed message.
func Render(nodes []NodeConfig, format string, w io.Writer) error {
	if format != "yaml" && format != "json" {
		return fmt.Errorf("xds: render: unknown format %q (want yaml or json)", format)
	}
	docs := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		doc, err := n.renderJSON()
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if format == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, append(append([]byte("["), bytes.Join(docs, []byte(","))...), ']'), "", "  "); err != nil {
			return fmt.Errorf("xds: render: %w", err)
		}
		out.WriteByte('\n')
		_, err := w.Write(out.Bytes())
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, doc := range docs {
		// JSON is YAML: decoding into a node keeps the key order.
		var node yaml.Node
		if err := yaml.Unmarshal(doc, &node); err != nil {
			return fmt.Errorf("xds: render: %w", err)
		}
		blockStyle(&node)
		if err := enc.Encode(&node); err != nil {
			return fmt.Errorf("xds: render: %w", err)
		}
	}
	return enc.Close()
}

// renderJSON is one node as compact JSON: node, version, then resources.
func (n NodeConfig) renderJSON() ([]byte, error) {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	var buf bytes.Buffer
	head, _ := json.Marshal(map[string]string{"node": n.Node, "version": n.Version()})
	buf.Write(head[:len(head)-1]) // keys sort: node, version
	for _, typeURL := range typeOrder {
		rs := n.Resources[typeURL]
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(&buf, ",%q:[", renderKeys[typeURL])
		for i, r := range rs {
			// Packed in an Any, so the resource itself carries its @type.
			body, err := opts.Marshal(mustAny(r))
			if err != nil {
				return nil, fmt.Errorf("xds: render %s %q: %w", shortType(typeURL), nameOf(r), err)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			// protojson varies its spacing on purpose; compact it.
			if err := json.Compact(&buf, body); err != nil {
				return nil, fmt.Errorf("xds: render: %w", err)
			}
		}
		buf.WriteByte(']')
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// blockStyle drops the JSON flow style and quoting, so the encoder writes
// block YAML and quotes only strings that would otherwise read as another
// type.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
