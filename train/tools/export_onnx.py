"""Write each checkpoint's network as ``model.onnx`` beside its weights: the editor's faster CPU forward.

    pip install onnx onnxscript                 # the exporter's; running the graphs needs onnxruntime alone
    python -m train.tools.export_onnx checkpoints [--components face_mesh mouth_inpainter]

For every component folder whose model has an ONNX network (``onnx_network``: the face mesh, the classifier, the
learned mouths, brows, eyes and lower face), the network is exported by torch's exporter with the batch size left
free. Its weights are not copied: each reads its bytes in ``model.safetensors`` (ONNX external data), float16 ones
through a cast and int8 ones times their scale, the one float32 product loading makes. The file's SHA-256 is
recorded: ``from_pretrained`` uses the graph only with those weights (``expr_models/models/onnx_forward.py``). Each
graph is then run beside torch at batch sizes 1 and 3, and the export stops where they differ by more than
``TOLERANCE``. Run it again after any of these checkpoints is trained or re-exported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

import expr_models  # noqa: F401  (registers the Auto classes)
from expr_models.models.modeling_utils import INT8_SCALE_SUFFIX, WEIGHTS_FILE
from expr_models.models.onnx_forward import ONNX_FILE, WEIGHTS_HASH_KEY, OnnxForward, file_sha256

MAX_GRAPH_BYTES = 500_000  # a graph larger than this holds copies of weights
TOLERANCE = 1e-4  # the largest difference from torch's output allowed, over the output's largest magnitude


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, help="the folder of component checkpoints (e.g. checkpoints)")
    parser.add_argument("--components", nargs="+", help="only these component folders (default: every one that "
                                                        "has an ONNX network)")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        print("error: the export needs onnx and onnxscript: pip install onnx onnxscript", file=sys.stderr)
        return 2
    folders = [args.checkpoints / name for name in args.components] if args.components else sorted(
        folder for folder in args.checkpoints.iterdir() if (folder / "config.json").is_file())
    for folder in folders:
        model = AutoModel.from_pretrained(folder)
        if model.onnx_network() is None:
            if args.components:
                print(f"error: {folder.name} ({type(model).__name__}) has no ONNX network", file=sys.stderr)
                return 2
            continue
        difference, size = export(model, folder)
        print(f"{folder.name}: {ONNX_FILE} {size / 1e6:.2f} MB, largest difference from torch {difference:.1e} "
              "of the output's scale")
        if difference > TOLERANCE:
            (folder / ONNX_FILE).unlink()
            print(f"error: {folder.name}'s graph differs from torch by more than {TOLERANCE:g}; removed",
                  file=sys.stderr)
            return 1
    return 0


def export(model, folder: Path) -> tuple[float, int]:
    """Write ``folder/model.onnx`` for ``model`` (loaded from ``folder``); return the largest difference of the
    loaded graph's outputs from torch's (over each output's largest magnitude) at batch sizes 1 and 3, and the file's
    size."""
    import onnx

    network = model.onnx_network().eval()
    torch.manual_seed(0)
    inputs = model.onnx_example_inputs()
    names = list(network.forward.__code__.co_varnames[1:1 + len(inputs)])
    # The exporter's optimiser removes per-call shape arithmetic (an instance norm's weights expanded to the batch:
    # a third of the mouth's time), but folds a batch norm into its convolution, whose weights then differ from the
    # stored ones and would be copied into the graph. So: optimised where every weight still reads from the file.
    for optimize in (True, False):
        with tempfile.TemporaryDirectory() as work:
            traced = Path(work) / ONNX_FILE
            torch.onnx.export(network, inputs, traced, input_names=names, dynamo=True, optimize=optimize,
                              dynamic_shapes=tuple({0: torch.export.Dim("batch")} for _ in inputs))
            graph = onnx.load(traced)
        weights_in_safetensors(graph, model, network, folder / WEIGHTS_FILE)
        if graph.ByteSize() <= MAX_GRAPH_BYTES:
            break
    slim(graph)
    entry = graph.metadata_props.add()
    entry.key, entry.value = WEIGHTS_HASH_KEY, file_sha256(folder / WEIGHTS_FILE)
    onnx.save(graph, folder / ONNX_FILE)
    onnx.checker.check_model(folder / ONNX_FILE)

    graph_forward = OnnxForward.load(folder, model, folder / WEIGHTS_FILE)
    if graph_forward is None:  # onnxruntime could not load it (its warning says why)
        return float("inf"), 0
    difference = 0.0
    for batch in (1, 3):  # other batch sizes than the traced one: the exporter may have fixed it without a word
        batch_inputs = tuple(tensor[:1].repeat(batch, *[1] * (tensor.ndim - 1)) for tensor in inputs)
        with torch.inference_mode():
            expected = network(*batch_inputs)
            try:
                got = graph_forward(*batch_inputs)
            except Exception as error:  # noqa: BLE001 - reported as a failed export
                print(f"error: {folder.name}'s graph refuses batch size {batch}: {error}", file=sys.stderr)
                return float("inf"), 0
        expected = expected if isinstance(expected, tuple) else (expected,)
        difference = max(difference, *(float((e - g).abs().max() / e.abs().max().clamp_min(1e-12))
                                        for e, g in zip(expected, got)))
    return difference, (folder / ONNX_FILE).stat().st_size


def weights_in_safetensors(graph, model, network, weights_file: Path) -> int:
    """Point every weight of ``graph`` at its bytes in ``weights_file`` (ONNX external data) instead of holding a
    float32 copy, with the nodes that turn them into the float32 values the model loaded: a cast for float16 weights;
    a cast times the per-channel scale for int8 ones (``quantize_weights``; one float32 product, as in loading, so
    nothing differs). Weights the exporter changed (a batch norm folded into its convolution) or made (a reshaped
    constant) stay in the graph. Returns how many moved."""
    from onnx import TensorProto, helper, numpy_helper

    header, data_start = safetensors_header(weights_file)
    loaded = model.state_dict()
    model_names = {id(tensor): name for name, tensor in [*model.named_parameters(), *model.named_buffers()]}
    stored_name = {name: model_names[id(tensor)] for name, tensor in [*network.named_parameters(),
                                                                      *network.named_buffers()]}
    onnx_types = {"F16": TensorProto.FLOAT16, "I8": TensorProto.INT8, "F32": TensorProto.FLOAT}

    def external(name: str, key: str):
        entry = header[key]
        tensor = TensorProto(name=name, data_type=onnx_types[entry["dtype"]], dims=entry["shape"],
                             data_location=TensorProto.EXTERNAL)
        begin, end = entry["data_offsets"]
        for field, value in (("location", weights_file.name), ("offset", str(data_start + begin)),
                             ("length", str(end - begin))):
            tensor.external_data.add(key=field, value=value)
        return tensor

    kept, added, nodes, moved = [], [], [], 0
    for weight in graph.graph.initializer:
        key = stored_name.get(weight.name)
        if key is None or key not in header or not np.array_equal(
                numpy_helper.to_array(weight), loaded[key].detach().contiguous().cpu().numpy()):
            kept.append(weight)
            continue
        scale_key = key + INT8_SCALE_SUFFIX
        added.append(external(weight.name + "_stored", key))
        if scale_key in header:
            added.append(external(weight.name + "_scale", scale_key))
            shape = numpy_helper.from_array(np.array([-1] + [1] * (len(weight.dims) - 1), np.int64),
                                            weight.name + "_scale_shape")
            added.append(shape)
            nodes += [helper.make_node("Cast", [weight.name + "_stored"], [weight.name + "_whole"],
                                       to=TensorProto.FLOAT),
                      helper.make_node("Cast", [weight.name + "_scale"], [weight.name + "_scale_float"],
                                       to=TensorProto.FLOAT),
                      helper.make_node("Reshape", [weight.name + "_scale_float", shape.name],
                                       [weight.name + "_scale_column"]),
                      helper.make_node("Mul", [weight.name + "_whole", weight.name + "_scale_column"], [weight.name])]
        else:
            nodes.append(helper.make_node("Cast", [weight.name + "_stored"], [weight.name], to=TensorProto.FLOAT))
        moved += 1
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept + added)
    nodes += list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    return moved


def slim(graph) -> None:
    """Drop what running the graph does not need: the exporter's notes on each node (source lines, module names),
    node names, the intermediate shapes (onnxruntime infers them), and long names of intermediate values (``t0``,
    ``t1``, ...; the inputs, outputs and weights keep theirs). The committed checkpoints have a size budget."""
    keep = {value.name for value in [*graph.graph.input, *graph.graph.output, *graph.graph.initializer]}
    short: dict[str, str] = {}
    for node in graph.graph.node:
        del node.metadata_props[:]
        node.doc_string, node.name = "", ""
        for names in (node.input, node.output):
            for index, name in enumerate(names):
                if name and name not in keep:
                    names[index] = short.setdefault(name, f"t{len(short)}")
    del graph.graph.value_info[:]


def safetensors_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header (name -> dtype, shape, data_offsets) and where its data starts."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


if __name__ == "__main__":
    raise SystemExit(main())
