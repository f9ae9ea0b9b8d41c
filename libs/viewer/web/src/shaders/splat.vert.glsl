// The viewer's splat vertex shader: Spark 2.2's splatVertex.glsl cut down to what the viewer
// draws, SPLATS_PER_INSTANCE splats per instance (see ../batched.js for why and for when
// Spark's own shader is used instead). The arithmetic is Spark's, line for line, minus:
// - the extended and covariance encodings (the viewer's splats are Spark's packed encoding),
//   2D splats, depth of field, orthographic cameras and the logarithmic depth buffer;
// - opacities above 1, which only Spark's level-of-detail encoding stores (clamped to 1);
// - the splat index and NDC varyings, which its fragment shader never reads.
// And plus: the quad ends where the splat's opacity falls below minAlpha (PlayCanvas clips its
// quads the same way), where the fragment shader would have discarded every pixel anyway.
precision highp float;
precision highp int;
precision highp usampler2DArray;

#include <splatDefines>

out vec4 vRgba;
out vec2 vSplatUv;
flat out float adjustedStdDev;

uniform vec2 renderSize;
uniform vec4 renderToViewQuat;
uniform vec3 renderToViewPos;
uniform float maxStdDev;
uniform float minPixelRadius;
uniform float maxPixelRadius;
uniform float minAlpha;
uniform float blurAmount;
uniform float preBlurAmount;
uniform float clipXY;
uniform float focalAdjustment;
uniform int foto3dSplatCount;

uniform usampler2D ordering;
uniform usampler2DArray extSplats;

void main() {
    // Outside the clip volume: drawn as nothing.
    gl_Position = vec4(0.0, 0.0, 2.0, 1.0);

    // position.z is the quad's number within the instance.
    int splatSlot = gl_InstanceID * FOTO3D_SPLATS_PER_INSTANCE + int(position.z);
    if (splatSlot >= foto3dSplatCount) {
        return;
    }
    uint splatIndex = texelFetch(ordering, ivec2((splatSlot >> 2) & 4095, splatSlot >> 14), 0)[splatSlot & 3];
    if (splatIndex == 0xffffffffu) {
        return;
    }

    vec3 center, scales;
    vec4 quaternion, rgba;
    uvec4 packedData = texelFetch(extSplats, splatTexCoord(int(splatIndex)), 0);
    unpackSplatEncoding(packedData, center, scales, quaternion, rgba, vec4(0.0, 1.0, LN_SCALE_MIN, LN_SCALE_MAX));
    if (all(equal(scales, vec3(0.0)))) {
        return;
    }
    // Spark stores opacity halved, so that its level-of-detail splats can go above 1.
    rgba.a = min(rgba.a * 2.0, 1.0);
    if ((rgba.a == 0.0) || (rgba.a < minAlpha)) {
        return;
    }
    rgba.rgb = max(rgba.rgb, vec3(0.0));

    vec3 viewCenter = quatVec(renderToViewQuat, center) + renderToViewPos;
    if (viewCenter.z >= 0.0) {
        return; // behind the camera
    }
    vec4 clipCenter = projectionMatrix * vec4(viewCenter, 1.0);
    if (abs(clipCenter.z) >= clipCenter.w) {
        return; // before the near or beyond the far plane
    }
    float clip = clipXY * clipCenter.w;
    if (abs(clipCenter.x) > clip || abs(clipCenter.y) > clip) {
        return; // centre well outside the view
    }

    // The splat's covariance in view space, projected to pixels (EWA splatting).
    mat3 RS = scaleQuaternionToMatrix(scales, quatQuat(renderToViewQuat, quaternion));
    mat3 cov3D = RS * transpose(RS);
    vec2 scaledRenderSize = renderSize * focalAdjustment;
    vec2 focal = 0.5 * scaledRenderSize * vec2(projectionMatrix[0][0], projectionMatrix[1][1]);
    float invZ = 1.0 / viewCenter.z;
    vec2 J1 = focal * invZ;
    vec2 J2 = -(J1 * viewCenter.xy) * invZ;
    mat3 J = mat3(
        J1.x, 0.0, J2.x,
        0.0, J1.y, J2.y,
        0.0, 0.0, 0.0
    );
    mat3 cov2D = transpose(J) * cov3D * J;
    float a = cov2D[0][0] + preBlurAmount;
    float d = cov2D[1][1] + preBlurAmount;
    float b = cov2D[0][1];

    // Spark's anti-aliasing blur, with the opacity compensated for the larger footprint.
    float detOrig = a * d - b * b;
    a += blurAmount;
    d += blurAmount;
    float det = a * d - b * b;
    rgba.a *= sqrt(max(0.0, detOrig / det));
    if (rgba.a < minAlpha) {
        return;
    }

    float eigenAvg = 0.5 * (a + d);
    float eigenDelta = sqrt(max(0.0, eigenAvg * eigenAvg - det));
    float eigen1 = eigenAvg + eigenDelta;
    float eigen2 = eigenAvg - eigenDelta;
    vec2 eigenVec1 = (abs(b) > 0.001) ? normalize(vec2(b, eigen1 - a))
        : ((a >= d) ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    vec2 eigenVec2 = vec2(eigenVec1.y, -eigenVec1.x);

    // The quad's half-size in standard deviations: Spark's maxStdDev, or less where
    // opacity * exp(-r^2 / 2) has already fallen below minAlpha.
    adjustedStdDev = min(maxStdDev, sqrt(2.0 * log(rgba.a / minAlpha)));
    float scale1 = min(maxPixelRadius, adjustedStdDev * sqrt(eigen1));
    float scale2 = min(maxPixelRadius, adjustedStdDev * sqrt(eigen2));
    if (scale1 < minPixelRadius && scale2 < minPixelRadius) {
        return;
    }

    vRgba = rgba;
    vSplatUv = position.xy * adjustedStdDev;
    vec2 pixelOffset = position.x * eigenVec1 * scale1 + position.y * eigenVec2 * scale2;
    vec2 ndcOffset = (2.0 / scaledRenderSize) * pixelOffset;
    vec3 ndcCenter = clipCenter.xyz / clipCenter.w;
    gl_Position = vec4((ndcCenter.xy + ndcOffset) * clipCenter.w, clipCenter.zw);
}
