// The viewer's splat fragment shader: Spark 2.2's splatFragment.glsl for opacities up to 1
// with its default options (falloff 1, sRGB output), with one discard instead of two and no
// branches. Under a software rasteriser each fragment's instructions count: with Spark's
// vertex shader, this alone took the guitar's frame from 316 to 225 ms (see ../batched.js).
precision highp float;
precision highp int;

uniform float minAlpha;

in vec4 vRgba;
in vec2 vSplatUv;
flat in float adjustedStdDev;

out vec4 fragColor;

void main() {
    float z2 = dot(vSplatUv, vSplatUv);
    float a = vRgba.a * exp(-0.5 * z2);
    if (a < minAlpha || z2 > adjustedStdDev * adjustedStdDev) {
        discard;
    }
    #ifdef PREMULTIPLIED_ALPHA
        fragColor = vec4(vRgba.rgb * a, a);
    #else
        fragColor = vec4(vRgba.rgb, a);
    #endif
}
