"""Detect faces in every image of a folder with Ray Data, one actor per GPU, and write one JSON line per image.

    pip install "./python[ray]"
    python python/examples/ray_folder.py tests/data faces.jsonl --gpus 1

On a cluster, run it on the head node after `ray start`: every actor reserves one GPU and opens the GPU Ray gave
it. Where Ray sees no GPU at all (a laptop with an integrated GPU, or no GPU), the actors reserve none and each
opens the best adapter wgpu finds.
"""

import argparse
import json

import ray

import sshface.ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("out", help="output .jsonl")
    ap.add_argument("--gpus", type=int, default=1, help="actors, one GPU each")
    ap.add_argument("--batch", type=int, default=16, help="images per Ray batch")
    ap.add_argument("--model", default="retinaface-mnv2")
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()

    ray.init()
    # Ray counts NVIDIA GPUs only; elsewhere reserve none and let wgpu pick (Metal, AMD, Intel, lavapipe).
    gpus_per_actor = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    if not gpus_per_actor:
        print("Ray sees no GPU: actors reserve none and use the best adapter wgpu finds")
    ds = ray.data.read_binary_files(args.folder, include_paths=True, file_extensions=sshface.IMAGE_EXTENSIONS)
    ds = ds.map_batches(
        sshface.ray.FaceDetector,
        fn_constructor_kwargs={"column": "bytes", "model": args.model, "weights": args.weights, "on_error": "none"},
        concurrency=args.gpus,
        num_gpus=gpus_per_actor,
        num_cpus=0.5,
        batch_size=args.batch,
    )
    n_images = n_faces = 0
    with open(args.out, "w") as f:
        for row in ds.select_columns(["path", "boxes", "scores"]).iter_rows():
            faces = [{"box": [float(v) for v in b], "score": float(s)} for b, s in zip(row["boxes"], row["scores"])]
            f.write(json.dumps({"image": row["path"], "faces": faces}) + "\n")
            n_images += 1
            n_faces += len(faces)
    print(f"{n_images} images, {n_faces} faces -> {args.out}")


if __name__ == "__main__":
    main()
